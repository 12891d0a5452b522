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

func elementID(name []byte) int {
	switch string(name) {
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

// parseDaticert parses daticert.xml, bounded by lim. Well-formed documents in the plain shape
// providers write (UTF-8, the XML declaration, elements, attributes, text with the predefined
// entities) are read by a small scanner; anything else (comments, CDATA, character references,
// other encodings, DTDs, syntax errors) is read by an encoding/xml token loop, which is the
// reference: both feed the same builder, and FuzzDaticert checks they agree. Stray text between
// elements is reported, not fatal; every field read before a fatal error is kept.
func parseDaticert(b []byte, lim Limits) (*Daticert, []error) {
	lim = (&Options{Limits: lim}).limits()
	b, pre := prepareDaticert(b, lim)
	if b == nil {
		return nil, pre
	}
	bd := &dcBuilder{lim: lim, probs: pre, arena: make([]byte, 0, len(b))}
	bd.reset()
	if !scanXML(b, bd) {
		bd.reset()
		decodeXML(b, bd)
	}
	return bd.result()
}

// prepareDaticert checks the size, drops a UTF-8 byte order mark and converts undeclared
// ISO-8859-1 to UTF-8. It returns nil when the document is refused.
func prepareDaticert(b []byte, lim Limits) ([]byte, []error) {
	if len(b) > lim.MaxXMLSize {
		return nil, []error{newProblem(ErrTooLarge, daticertPart, "%d bytes, limit %d", len(b), lim.MaxXMLSize)}
	}
	var pre []error
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	if !utf8.Valid(b) && !hasEncodingDecl(b) {
		// No declared encoding but not UTF-8: the common mistake is ISO-8859-1.
		pre = append(pre, newProblem(ErrCharset, daticertPart, "not UTF-8 and no encoding declared; read as ISO-8859-1"))
		b = latin1ToUTF8(b)
	}
	if b == nil {
		b = []byte{}
	}
	return b, pre
}

// dcBuilder builds a Daticert from XML events. Field values are collected in one byte arena and
// turned into strings with a single allocation at the end.
type dcBuilder struct {
	lim      Limits
	root     bool
	stackBuf [16]int
	stack    []int
	cur      int    // element of the last start event
	text     []byte // text of the current leaf element
	arena    []byte
	fields   [fieldCount]span
	dest     []recipientSpan
	ricez    []span
	stray    bool
	probs    []error
	npre     int  // problems found before parsing (kept on reset)
	stop     bool // a fatal problem: ignore further events
	reject   bool // the root is not postacert: no result
}

// span is a range of dcBuilder.arena; the zero span is absent.
type span struct{ a, b int }

type recipientSpan struct{ addr, typ span }

// field slots: the text leaves use their element id, attributes the slots after them.
const (
	fieldTipo = elErroreEsteso + 1 + iota
	fieldErrore
	fieldZona
	fieldRicevuta
	fieldCount
)

func (bd *dcBuilder) reset() {
	if bd.stack == nil {
		bd.npre = len(bd.probs)
	}
	*bd = dcBuilder{lim: bd.lim, probs: bd.probs[:bd.npre], npre: bd.npre, text: bd.text[:0], arena: bd.arena[:0]}
	bd.stack = bd.stackBuf[:0]
}

// keep appends the trimmed v to the arena.
func (bd *dcBuilder) keep(v []byte) span {
	v = trimSpaceBytes(v)
	a := len(bd.arena)
	bd.arena = append(bd.arena, v...)
	return span{a, len(bd.arena)}
}

func (bd *dcBuilder) add(err error, format string, args ...any) {
	bd.probs = append(bd.probs, newProblem(err, daticertPart, format, args...))
}

func (bd *dcBuilder) fatal(err error, format string, args ...any) {
	bd.add(err, format, args...)
	bd.stop = true
}

func (bd *dcBuilder) start(name []byte) {
	if bd.stop {
		return
	}
	if len(bd.stack) >= bd.lim.MaxXMLDepth {
		bd.fatal(ErrTooDeep, "elements nested deeper than %d", bd.lim.MaxXMLDepth)
		return
	}
	id := elementID(name)
	if len(bd.stack) == 0 {
		if bd.root {
			bd.fatal(ErrDaticert, "more than one root element")
			return
		}
		bd.root = true
		if id != elPostacert {
			bd.fatal(ErrDaticert, "root element is <%s>, not <postacert>", clip(name, 40))
			bd.reject = true
			return
		}
	}
	bd.stack = append(bd.stack, id)
	bd.cur = id
	bd.text = bd.text[:0]
	if id == elDestinatari {
		bd.dest = append(bd.dest, recipientSpan{})
	}
}

func (bd *dcBuilder) attr(name, value []byte) {
	if bd.stop {
		return
	}
	switch bd.cur {
	case elPostacert:
		if string(name) == "tipo" {
			bd.fields[fieldTipo] = bd.keep(value)
		} else if string(name) == "errore" {
			bd.fields[fieldErrore] = bd.keep(value)
		}
	case elDestinatari:
		if string(name) == "tipo" {
			bd.dest[len(bd.dest)-1].typ = bd.keep(value)
		}
	case elData:
		if string(name) == "zona" {
			bd.fields[fieldZona] = bd.keep(value)
			if bd.fields[fieldZona] == (span{}) {
				bd.fields[fieldZona] = span{-1, -1} // present but empty
			}
		}
	case elRicevuta:
		if string(name) == "tipo" {
			bd.fields[fieldRicevuta] = bd.keep(value)
		}
	}
}

func (bd *dcBuilder) end(name []byte) {
	if bd.stop {
		return
	}
	if len(bd.stack) == 0 {
		bd.fatal(ErrDaticert, "unexpected end element </%s>", clip(name, 40))
		return
	}
	id := bd.stack[len(bd.stack)-1]
	if elementID(name) != id {
		bd.fatal(ErrDaticert, "end element </%s> does not match <%s>", clip(name, 40), elementName(id))
		return
	}
	bd.stack = bd.stack[:len(bd.stack)-1]
	bd.cur = elOther
	switch {
	case id == elDestinatari:
		bd.dest[len(bd.dest)-1].addr = bd.keep(bd.text)
	case id == elRicezione:
		bd.ricez = append(bd.ricez, bd.keep(bd.text))
	case id == elMsgID:
		t := trimSpaceBytes(bd.text)
		if i := bytes.IndexByte(t, '<'); i >= 0 {
			t = t[i+1:]
			if j := bytes.IndexByte(t, '>'); j >= 0 {
				t = t[:j]
			}
		}
		bd.fields[id] = bd.keep(t)
	case id >= elMittente:
		bd.fields[id] = bd.keep(bd.text)
	}
	bd.text = bd.text[:0]
}

func (bd *dcBuilder) chars(t []byte) {
	if bd.stop {
		return
	}
	if len(bd.stack) == 0 {
		if len(trimSpaceBytes(t)) > 0 {
			bd.add(ErrDaticert, "text outside the root element")
		}
		return
	}
	id := bd.stack[len(bd.stack)-1]
	switch {
	case id >= elMittente:
		bd.text = append(bd.text, t...)
	case id != elOther && !bd.stray && len(trimSpaceBytes(t)) > 0:
		bd.stray = true
		bd.add(ErrDaticert, "unexpected text %q in <%s> (ignored)", clip(trimSpaceBytes(t), 40), elementName(id))
	}
}

func (bd *dcBuilder) eof() {
	if !bd.stop && len(bd.stack) > 0 {
		bd.add(ErrDaticert, "truncated: <%s> not closed", elementName(bd.stack[len(bd.stack)-1]))
	}
}

func (bd *dcBuilder) result() (*Daticert, []error) {
	if bd.reject {
		return nil, bd.probs
	}
	if !bd.root {
		if len(bd.probs) == bd.npre {
			bd.add(ErrDaticert, "no root element")
		}
		return nil, bd.probs
	}
	all := string(bd.arena)
	get := func(sp span) string {
		if sp.a < 0 {
			return ""
		}
		return all[sp.a:sp.b]
	}
	f := &bd.fields
	d := &Daticert{
		Tipo:             Kind(get(f[fieldTipo])),
		Errore:           ErrorCode(get(f[fieldErrore])),
		Mittente:         get(f[elMittente]),
		Risposte:         get(f[elRisposte]),
		Oggetto:          get(f[elOggetto]),
		GestoreEmittente: get(f[elGestore]),
		Identificativo:   get(f[elIdentificativo]),
		MsgID:            get(f[elMsgID]),
		Ricevuta:         ReceiptType(get(f[fieldRicevuta])),
		Consegna:         get(f[elConsegna]),
		ErroreEsteso:     get(f[elErroreEsteso]),
	}
	if len(bd.dest) > 0 {
		d.Destinatari = make([]Recipient, len(bd.dest))
		for i, r := range bd.dest {
			d.Destinatari[i] = Recipient{Address: get(r.addr), Type: RecipientType(get(r.typ))}
		}
	}
	if len(bd.ricez) > 0 {
		d.Ricezione = make([]string, len(bd.ricez))
		for i, r := range bd.ricez {
			d.Ricezione[i] = get(r)
		}
	}
	if d.Tipo == "" {
		bd.add(ErrDaticert, "postacert has no tipo")
	} else if !knownTipo(d.Tipo) {
		bd.add(ErrDaticert, "unknown tipo %q", clipString(string(d.Tipo), 40))
	}
	if d.Errore == "" {
		d.Errore = ErrNessuno
	}
	giorno, ora, zona := get(f[elGiorno]), get(f[elOra]), get(f[fieldZona])
	if giorno != "" || ora != "" || f[fieldZona] != (span{}) {
		t, err := daticertTime(giorno, ora, zona)
		if err != nil {
			bd.add(ErrDaticert, "data: %v", err)
		} else {
			d.Data = t
		}
	}
	return d, bd.probs
}

// decodeXML feeds bd from an encoding/xml token loop.
func decodeXML(b []byte, bd *dcBuilder) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	dec.CharsetReader = charset.Reader
	for !bd.stop {
		tok, err := dec.RawToken()
		if err == io.EOF {
			bd.eof()
			return
		}
		if err != nil {
			bd.fatal(ErrDaticert, "%v", err)
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			bd.start(qname(t.Name))
			for _, a := range t.Attr {
				if a.Name.Space == "" {
					bd.attr([]byte(a.Name.Local), []byte(a.Value))
				}
			}
		case xml.EndElement:
			bd.end(qname(t.Name))
		case xml.CharData:
			bd.chars(t)
		case xml.Directive:
			bd.fatal(ErrXMLForbidden, "<!%s>", clip(t, 40))
		case xml.ProcInst, xml.Comment:
		}
	}
}

// qname returns the element name as written ("prefix:local" or "local").
func qname(n xml.Name) []byte {
	if n.Space == "" {
		return []byte(n.Local)
	}
	return []byte(n.Space + ":" + n.Local)
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
