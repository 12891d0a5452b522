package pec

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message/charset"
)

// wordDecoder decodes RFC 2047 encoded words in any charset go-message knows (ISO-8859-*,
// Windows-125x, ...). It holds no state, so it is safe for concurrent use.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeHeaders fills h from the raw top-level header values.
func (w *walker) decodeHeaders(h *Headers) {
	t := &w.top
	if v := t[hkMessageID]; v != nil {
		h.MessageID = stripAngle(unfold(v))
	}
	if v := t[hkFrom]; v != nil {
		rest := unfold(v)
		for len(rest) > 0 {
			var name, addr []byte
			name, addr, rest = nextAddress(rest)
			if len(addr) > 0 {
				h.From = normAddress(addr)
				h.FromName = w.decodeWords(name, "From")
				break
			}
		}
	}
	h.To = addressList(t[hkTo])
	h.Cc = addressList(t[hkCc])
	if v := t[hkDate]; v != nil {
		d, err := mail.ParseDate(string(unfold(v)))
		if err != nil {
			w.problemAt(ErrMalformedHeader, "", "Date %q: %v", clip(unfold(v), 80), err)
		} else {
			h.Date = d
		}
	}
	if v := t[hkSubject]; v != nil {
		h.Subject = w.decodeWords(unfold(v), "Subject")
	}
	h.XRicevuta = lowerString(unfold(t[hkXRicevuta]))
	h.XTrasporto = lowerString(unfold(t[hkXTrasporto]))
	h.XTipoRicevuta = lowerString(unfold(t[hkXTipoRicevuta]))
	if v := t[hkXRiferimento]; v != nil {
		h.XRiferimentoMessageID = stripAngle(unfold(v))
	}
	if v := t[hkXVerifica]; v != nil {
		h.XVerificaSicurezza = string(unfold(v))
	}
	if v := t[hkXMittente]; v != nil {
		h.XMittente = string(unfold(v))
	}
}

// decodeWords decodes RFC 2047 encoded words; on error the raw text is kept and a problem is
// reported.
func (w *walker) decodeWords(v []byte, field string) string {
	if !bytes.Contains(v, []byte("=?")) {
		return string(v)
	}
	s, err := wordDecoder.DecodeHeader(string(v))
	if err != nil {
		w.problemAt(ErrCharset, "", "%s: %v", field, err)
		return string(v)
	}
	return s
}

// stripAngle returns the text between the first '<' and the next '>', or v itself when there are
// no angle brackets.
func stripAngle(v []byte) string {
	v = bytes.TrimSpace(v)
	if i := bytes.IndexByte(v, '<'); i >= 0 {
		r := v[i+1:]
		if j := bytes.IndexByte(r, '>'); j >= 0 {
			r = r[:j]
		}
		return string(bytes.TrimSpace(r))
	}
	return string(v)
}

// addressList returns the addresses of a raw address-list header value.
func addressList(v []byte) []string {
	if v == nil {
		return nil
	}
	var out []string
	rest := unfold(v)
	for len(rest) > 0 {
		var addr []byte
		_, addr, rest = nextAddress(rest)
		if len(addr) > 0 {
			out = append(out, normAddress(addr))
		}
	}
	return out
}

// normAddress returns addr as a string with its domain lower-cased.
func normAddress(addr []byte) string {
	s := string(addr)
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		if d := strings.ToLower(s[i:]); d != s[i:] {
			s = s[:i] + d
		}
	}
	return s
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
