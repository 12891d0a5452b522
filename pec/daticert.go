package pec

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// ParseDaticert parses a daticert.xml document (certdata.xml in RFC 6109) on its own. It returns
// what it could recover (nil when the document is not a postacert document at all) and the
// problems found, each a *ParseError. DTDs and entity declarations are refused with
// [ErrXMLForbidden]. A nil *Options means the default limits.
func ParseDaticert(b []byte, opts *Options) (*Daticert, []error) {
	return parseDaticert(b, opts.limits())
}

// daticert element identifiers
const (
	elOther = iota
	elPostacert
	elIntestazione
	elDati
	elData
	elRicevuta
	// text leaves
	elMittente
	elDestinatari
	elRisposte
	elOggetto
	elGestore
	elGiorno
	elOra
	elIdentificativo
	elMsgID
	elConsegna
	elRicezione
	elErroreEsteso
)

func elementID(name string) int {
	switch name {
	case "postacert":
		return elPostacert
	case "intestazione":
		return elIntestazione
	case "dati":
		return elDati
	case "data":
		return elData
	case "ricevuta":
		return elRicevuta
	case "mittente":
		return elMittente
	case "destinatari":
		return elDestinatari
	case "risposte":
		return elRisposte
	case "oggetto":
		return elOggetto
	case "gestore-emittente":
		return elGestore
	case "giorno":
		return elGiorno
	case "ora":
		return elOra
	case "identificativo":
		return elIdentificativo
	case "msgid":
		return elMsgID
	case "consegna":
		return elConsegna
	case "ricezione":
		return elRicezione
	case "errore-esteso":
		return elErroreEsteso
	}
	return elOther
}

var elementNames = [...]string{
	elOther: "element", elPostacert: "postacert", elIntestazione: "intestazione", elDati: "dati",
	elData: "data", elRicevuta: "ricevuta", elMittente: "mittente", elDestinatari: "destinatari",
	elRisposte: "risposte", elOggetto: "oggetto", elGestore: "gestore-emittente", elGiorno: "giorno",
	elOra: "ora", elIdentificativo: "identificativo", elMsgID: "msgid", elConsegna: "consegna",
	elRicezione: "ricezione", elErroreEsteso: "errore-esteso",
}

func elementName(id int) string { return elementNames[id] }

const daticertPart = "daticert.xml"

// daticertTipos are the tipo values of the technical rules.
func knownTipo(k Kind) bool {
	switch k {
	case KindAccettazione, KindNonAccettazione, KindPresaInCarico, KindAvvenutaConsegna,
		KindPostaCertificata, KindErroreConsegna, KindPreavvisoErroreConsegna, KindRilevazioneVirus:
		return true
	}
	return false
}

// parseDaticert parses daticert.xml with an encoding/xml token loop bounded by lim. It tolerates
// stray text between elements (reported, not fatal) and keeps every field read before a fatal
// error.
func parseDaticert(b []byte, lim Limits) (*Daticert, []error) {
	lim = (&Options{Limits: lim}).limits()
	var probs []error
	add := func(err error, format string, args ...any) {
		probs = append(probs, newProblem(err, daticertPart, format, args...))
	}
	if len(b) > lim.MaxXMLSize {
		add(ErrTooLarge, "%d bytes, limit %d", len(b), lim.MaxXMLSize)
		return nil, probs
	}
	if !utf8.Valid(b) && !hasEncodingDecl(b) {
		// No declared encoding but not UTF-8: the common mistake is ISO-8859-1.
		add(ErrCharset, "not UTF-8 and no encoding declared; read as ISO-8859-1")
		b = latin1ToUTF8(b)
	}

	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	dec.CharsetReader = charset.Reader

	var (
		d        Daticert
		root     bool
		stackBuf [16]int
		stack    = stackBuf[:0]
		text     []byte
		stray    bool
		giorno   string
		ora      string
		zona     string
		haveZona bool
		fatal    bool
	)
	for !fatal {
		tok, err := dec.RawToken()
		if err == io.EOF {
			if len(stack) > 0 {
				add(ErrDaticert, "truncated: <%s> not closed", elementName(stack[len(stack)-1]))
			}
			break
		}
		if err != nil {
			add(ErrDaticert, "%v", err)
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= lim.MaxXMLDepth {
				add(ErrTooDeep, "elements nested deeper than %d", lim.MaxXMLDepth)
				fatal = true
				break
			}
			id := elementID(t.Name.Local)
			if len(stack) == 0 {
				if root {
					add(ErrDaticert, "more than one root element")
					fatal = true
					break
				}
				root = true
				if id != elPostacert {
					add(ErrDaticert, "root element is <%s>, not <postacert>", clipString(t.Name.Local, 40))
					return nil, probs
				}
			}
			stack = append(stack, id)
			text = text[:0]
			switch id {
			case elPostacert:
				for _, a := range t.Attr {
					switch a.Name.Local {
					case "tipo":
						d.Tipo = Kind(strings.TrimSpace(a.Value))
					case "errore":
						d.Errore = ErrorCode(strings.TrimSpace(a.Value))
					}
				}
			case elDestinatari:
				d.Destinatari = append(d.Destinatari, Recipient{Type: RecipientType(strings.TrimSpace(attr(t.Attr, "tipo")))})
			case elData:
				for _, a := range t.Attr {
					if a.Name.Local == "zona" {
						zona, haveZona = strings.TrimSpace(a.Value), true
					}
				}
			case elRicevuta:
				d.Ricevuta = ReceiptType(strings.TrimSpace(attr(t.Attr, "tipo")))
			}
		case xml.EndElement:
			if len(stack) == 0 {
				add(ErrDaticert, "unexpected end element </%s>", clipString(t.Name.Local, 40))
				fatal = true
				break
			}
			id := stack[len(stack)-1]
			if elementID(t.Name.Local) != id {
				add(ErrDaticert, "end element </%s> does not match <%s>", clipString(t.Name.Local, 40), elementName(id))
				fatal = true
				break
			}
			stack = stack[:len(stack)-1]
			if id >= elMittente {
				s := string(bytes.TrimSpace(text))
				switch id {
				case elMittente:
					d.Mittente = s
				case elDestinatari:
					d.Destinatari[len(d.Destinatari)-1].Address = s
				case elRisposte:
					d.Risposte = s
				case elOggetto:
					d.Oggetto = s
				case elGestore:
					d.GestoreEmittente = s
				case elGiorno:
					giorno = s
				case elOra:
					ora = s
				case elIdentificativo:
					d.Identificativo = s
				case elMsgID:
					d.MsgID = stripAngle([]byte(s))
				case elConsegna:
					d.Consegna = s
				case elRicezione:
					d.Ricezione = append(d.Ricezione, s)
				case elErroreEsteso:
					d.ErroreEsteso = s
				}
			}
			text = text[:0]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					add(ErrDaticert, "text outside the root element")
				}
				break
			}
			id := stack[len(stack)-1]
			switch {
			case id >= elMittente:
				text = append(text, t...)
			case id != elOther && !stray && len(bytes.TrimSpace(t)) > 0:
				stray = true
				add(ErrDaticert, "unexpected text %q in <%s> (ignored)", clip(bytes.TrimSpace(t), 40), elementName(id))
			}
		case xml.Directive:
			add(ErrXMLForbidden, "<!%s>", clip(t, 40))
			fatal = true
		case xml.ProcInst, xml.Comment:
		}
	}
	if !root {
		if len(probs) == 0 {
			add(ErrDaticert, "no root element")
		}
		return nil, probs
	}
	if d.Tipo == "" {
		add(ErrDaticert, "postacert has no tipo")
	} else if !knownTipo(d.Tipo) {
		add(ErrDaticert, "unknown tipo %q", clipString(string(d.Tipo), 40))
	}
	if d.Errore == "" {
		d.Errore = ErrNessuno
	}
	if giorno != "" || ora != "" || haveZona {
		t, err := daticertTime(giorno, ora, zona)
		if err != nil {
			add(ErrDaticert, "data: %v", err)
		} else {
			d.Data = t
		}
	}
	return &d, probs
}

func attr(as []xml.Attr, name string) string {
	for _, a := range as {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// hasEncodingDecl reports whether b starts with an XML declaration naming an encoding.
func hasEncodingDecl(b []byte) bool {
	b = bytes.TrimLeft(b, "\ufeff \t\r\n")
	if !bytes.HasPrefix(b, []byte("<?xml")) {
		return false
	}
	end := bytes.Index(b, []byte("?>"))
	if end < 0 {
		return false
	}
	return bytes.Contains(b[:end], []byte("encoding"))
}

func latin1ToUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	for _, c := range b {
		out = utf8.AppendRune(out, rune(c))
	}
	return out
}

// zones caches the fixed zones of Italian time.
var (
	zoneCET  = time.FixedZone("+0100", 3600)
	zoneCEST = time.FixedZone("+0200", 7200)
)

var errBadDate = errors.New("bad date")

// daticertTime combines giorno (dd/mm/yyyy), ora (hh:mm:ss) and zona (+hhmm).
func daticertTime(giorno, ora, zona string) (time.Time, error) {
	if len(giorno) != 10 || giorno[2] != '/' || giorno[5] != '/' {
		return time.Time{}, fmt.Errorf("giorno %q is not dd/mm/yyyy", clipString(giorno, 20))
	}
	day, ok1 := atoi(giorno[0:2])
	month, ok2 := atoi(giorno[3:5])
	year, ok3 := atoi(giorno[6:10])
	if !ok1 || !ok2 || !ok3 || day < 1 || day > 31 || month < 1 || month > 12 {
		return time.Time{}, fmt.Errorf("giorno %q is not dd/mm/yyyy", clipString(giorno, 20))
	}
	var hour, minute, sec int
	switch {
	case len(ora) == 8 && ora[2] == ':' && ora[5] == ':':
		var ok4, ok5, ok6 bool
		hour, ok4 = atoi(ora[0:2])
		minute, ok5 = atoi(ora[3:5])
		sec, ok6 = atoi(ora[6:8])
		if !ok4 || !ok5 || !ok6 {
			return time.Time{}, fmt.Errorf("ora %q is not hh:mm:ss", clipString(ora, 20))
		}
	case len(ora) == 5 && ora[2] == ':':
		var ok4, ok5 bool
		hour, ok4 = atoi(ora[0:2])
		minute, ok5 = atoi(ora[3:5])
		if !ok4 || !ok5 {
			return time.Time{}, fmt.Errorf("ora %q is not hh:mm:ss", clipString(ora, 20))
		}
	default:
		return time.Time{}, fmt.Errorf("ora %q is not hh:mm:ss", clipString(ora, 20))
	}
	if hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, fmt.Errorf("ora %q out of range", ora)
	}
	loc, err := zone(zona)
	if err != nil {
		return time.Time{}, err
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, loc)
	if t.Day() != day {
		return time.Time{}, fmt.Errorf("giorno %q does not exist", giorno)
	}
	return t, nil
}

func zone(z string) (*time.Location, error) {
	switch z {
	case "+0100":
		return zoneCET, nil
	case "+0200":
		return zoneCEST, nil
	case "":
		return nil, fmt.Errorf("zona missing")
	}
	if z == "Z" || z == "UTC" || z == "GMT" {
		return time.UTC, nil
	}
	s := strings.ReplaceAll(z, ":", "")
	if len(s) != 5 || (s[0] != '+' && s[0] != '-') {
		return nil, fmt.Errorf("zona %q is not +hhmm", clipString(z, 20))
	}
	h, ok1 := atoi(s[1:3])
	m, ok2 := atoi(s[3:5])
	if !ok1 || !ok2 || h > 14 || m > 59 {
		return nil, fmt.Errorf("zona %q is not +hhmm", clipString(z, 20))
	}
	off := h*3600 + m*60
	if s[0] == '-' {
		off = -off
	}
	return time.FixedZone(s, off), nil
}

func atoi(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
