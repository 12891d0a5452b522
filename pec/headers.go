package pec

import (
	"bytes"
	"mime"
	"net/mail"
	"time"

	"github.com/emersion/go-message/charset"
)

// wordDecoder decodes RFC 2047 encoded words in any charset go-message knows (ISO-8859-*,
// Windows-125x, ...). It holds no state, so it is safe for concurrent use.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeaders fills h from the raw top-level header values. The values are gathered in one
// byte arena and become strings with a single allocation.
func (w *walker) decodeHeaders(h *Headers) {
	t := &w.top
	var stack [1024]byte
	ar := stack[:0]
	keep := func(v []byte) span {
		a := len(ar)
		ar = append(ar, v...)
		return span{a, len(ar)}
	}
	keepLower := func(v []byte) span {
		a := len(ar)
		for _, c := range v {
			ar = append(ar, lowerASCII(c))
		}
		return span{a, len(ar)}
	}
	keepAddr := func(addr []byte) span {
		a := len(ar)
		at := bytes.LastIndexByte(addr, '@')
		if at < 0 {
			at = len(addr)
		}
		ar = append(ar, addr[:at]...)
		for _, c := range addr[at:] {
			ar = append(ar, lowerASCII(c))
		}
		return span{a, len(ar)}
	}
	var (
		msgID, from, fromName, subject, ric, tra, tipo, rif, ver, mit span
		to, cc                                                        []span
	)
	if v := t[hkMessageID]; v != nil {
		msgID = keep(angleContent(unfold(v)))
	}
	if v := t[hkFrom]; v != nil {
		rest := unfold(v)
		for len(rest) > 0 {
			var name, addr []byte
			name, addr, rest = nextAddress(rest)
			if len(addr) > 0 {
				from = keepAddr(addr)
				fromName = keep(w.decodeWords(name, "From"))
				break
			}
		}
	}
	for _, x := range [2]struct {
		k    int
		list *[]span
	}{{hkTo, &to}, {hkCc, &cc}} {
		v := t[x.k]
		if v == nil {
			continue
		}
		var stackSpans [8]span
		spans := stackSpans[:0]
		for rest := unfold(v); len(rest) > 0; {
			var addr []byte
			_, addr, rest = nextAddress(rest)
			if len(addr) > 0 {
				spans = append(spans, keepAddr(addr))
			}
		}
		if len(spans) > 0 {
			*x.list = append([]span(nil), spans...)
		}
	}
	if v := t[hkDate]; v != nil {
		d, err := parseDate(unfold(v))
		if err != nil {
			w.problemAt(ErrMalformedHeader, "", "Date %q: %v", clip(unfold(v), 80), err)
		} else {
			h.Date = d
		}
	}
	if v := t[hkSubject]; v != nil {
		subject = keep(w.decodeWords(unfold(v), "Subject"))
	}
	ric = keepLower(unfold(t[hkXRicevuta]))
	tra = keepLower(unfold(t[hkXTrasporto]))
	tipo = keepLower(unfold(t[hkXTipoRicevuta]))
	if v := t[hkXRiferimento]; v != nil {
		rif = keep(angleContent(unfold(v)))
	}
	ver = keep(unfold(t[hkXVerifica]))
	mit = keep(unfold(t[hkXMittente]))

	all := string(ar)
	get := func(sp span) string { return all[sp.a:sp.b] }
	h.MessageID = get(msgID)
	h.From = get(from)
	h.FromName = get(fromName)
	h.Subject = get(subject)
	h.XRicevuta = get(ric)
	h.XTrasporto = get(tra)
	h.XTipoRicevuta = get(tipo)
	h.XRiferimentoMessageID = get(rif)
	h.XVerificaSicurezza = get(ver)
	h.XMittente = get(mit)
	if len(to) > 0 {
		h.To = make([]string, len(to))
		for i, sp := range to {
			h.To[i] = get(sp)
		}
	}
	if len(cc) > 0 {
		h.Cc = make([]string, len(cc))
		for i, sp := range cc {
			h.Cc[i] = get(sp)
		}
	}
}

// decodeWords decodes RFC 2047 encoded words; on error the raw text is kept and a problem is
// reported.
func (w *walker) decodeWords(v []byte, field string) []byte {
	if !bytes.Contains(v, []byte("=?")) {
		return v
	}
	s, err := wordDecoder.DecodeHeader(string(v))
	if err != nil {
		w.problemAt(ErrCharset, "", "%s: %v", field, err)
		return v
	}
	return []byte(s)
}

// angleContent returns the text between the first '<' and the next '>', or v itself when there
// are no angle brackets.
func angleContent(v []byte) []byte {
	v = bytes.TrimSpace(v)
	if i := bytes.IndexByte(v, '<'); i >= 0 {
		r := v[i+1:]
		if j := bytes.IndexByte(r, '>'); j >= 0 {
			r = r[:j]
		}
		return bytes.TrimSpace(r)
	}
	return v
}

// nextAddress parses the first mailbox of an address list leniently: "a@b", "Name <a@b>",
// "\"Name\" <a@b>", "a@b (comment)", unquoted display names holding '@' as some providers write
// them, and group syntax ("team: a@b, c@d;"). It returns the raw display name (quotes removed,
// still RFC 2047 encoded) and the address, and the rest of the list.
func nextAddress(v []byte) (name, addr, rest []byte) {
	inQuote, comment, angle := false, 0, false
	end := len(v)
	lt, gt, colon := -1, -1, -1
scan:
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case comment > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				comment++
			} else if c == ')' {
				comment--
			}
		case c == '"':
			inQuote = true
		case c == '(':
			comment = 1
		case c == '<':
			angle = true
			lt, gt = i, -1
		case c == '>':
			angle = false
			if lt >= 0 && gt < 0 {
				gt = i
			}
		case c == ':' && !angle && lt < 0 && colon < 0:
			colon = i
		case c == ',' && !angle:
			end = i
			break scan
		}
	}
	elem := v[:end]
	if end < len(v) {
		rest = v[end+1:]
	}
	if lt >= 0 {
		a := elem[lt+1:]
		if gt > lt {
			a = elem[lt+1 : gt]
		}
		disp := elem[:lt]
		if colon >= 0 && colon < lt {
			disp = elem[colon+1 : lt]
		}
		return unquote(bytes.TrimSpace(disp)), bytes.TrimSpace(a), rest
	}
	if colon >= 0 {
		elem = elem[colon+1:]
	}
	elem = bytes.TrimSpace(stripComments(elem))
	elem = bytes.TrimRight(elem, ";")
	return nil, bytes.TrimSpace(elem), rest
}

func stripComments(v []byte) []byte {
	if bytes.IndexByte(v, '(') < 0 {
		return v
	}
	out := make([]byte, 0, len(v))
	depth, inQuote := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote:
			if c == '"' {
				inQuote = false
			}
			out = append(out, c)
		case depth > 0:
			if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case c == '(':
			depth = 1
		case c == '"':
			inQuote = true
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// unquote removes surrounding double quotes and backslash escapes.
func unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		if bytes.IndexByte(v, '\\') >= 0 {
			v = unescapeQuoted(v)
		}
	}
	return v
}

var months = [12]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// parseDate parses an RFC 5322 date-time. The usual shape ("Fri, 18 Aug 2023 17:37:14 +0200",
// optionally followed by a comment) is read directly; anything else goes to net/mail.
func parseDate(v []byte) (time.Time, error) {
	if t, ok := parseDateFast(v); ok {
		return t, nil
	}
	return mail.ParseDate(string(v))
}

func parseDateFast(s []byte) (time.Time, bool) {
	// [day-name ","]
	if len(s) > 4 && s[3] == ',' {
		s = bytes.TrimLeft(s[4:], " \t")
	}
	num := func(min, max int) (int, bool) {
		n, i := 0, 0
		for i < len(s) && i < max && '0' <= s[i] && s[i] <= '9' {
			n = n*10 + int(s[i]-'0')
			i++
		}
		if i < min {
			return 0, false
		}
		s = s[i:]
		return n, true
	}
	sep := func(c byte) bool {
		if len(s) == 0 || s[0] != c {
			return false
		}
		s = s[1:]
		if c == ' ' {
			s = bytes.TrimLeft(s, " \t")
		}
		return true
	}
	day, ok := num(1, 2)
	if !ok || !sep(' ') || len(s) < 3 {
		return time.Time{}, false
	}
	month := 0
	for i, m := range months {
		if equalFold(s[:3], m) {
			month = i + 1
			break
		}
	}
	s = s[3:]
	if month == 0 || !sep(' ') {
		return time.Time{}, false
	}
	year, ok := num(4, 4)
	if !ok || !sep(' ') {
		return time.Time{}, false
	}
	hour, ok := num(2, 2)
	if !ok || !sep(':') {
		return time.Time{}, false
	}
	minute, ok := num(2, 2)
	if !ok {
		return time.Time{}, false
	}
	sec := 0
	if len(s) > 0 && s[0] == ':' {
		s = s[1:]
		if sec, ok = num(2, 2); !ok {
			return time.Time{}, false
		}
	}
	if !sep(' ') || len(s) < 5 || (s[0] != '+' && s[0] != '-') {
		return time.Time{}, false
	}
	sign := s[0]
	s = s[1:]
	zh, ok1 := num(2, 2)
	zm, ok2 := num(2, 2)
	if !ok1 || !ok2 || zm > 59 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	if s = bytes.TrimLeft(s, " \t"); len(s) > 0 && (s[0] != '(' || s[len(s)-1] != ')') {
		return time.Time{}, false
	}
	off := zh*3600 + zm*60
	if sign == '-' {
		off = -off
	}
	var loc *time.Location
	switch off {
	case 3600:
		loc = zoneCET
	case 7200:
		loc = zoneCEST
	case 0:
		loc = time.UTC
	default:
		loc = time.FixedZone("", off)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, loc)
	if t.Day() != day {
		return time.Time{}, false
	}
	return t, true
}
