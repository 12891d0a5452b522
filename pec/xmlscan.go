package pec

import (
	"bytes"
	"unicode/utf8"
)

// scanXML is the fast path of parseDaticert: a scanner for the plain XML that providers write.
// It feeds bd exactly the events encoding/xml's RawToken loop would, and returns false (having
// possibly fed bd part of the document: the caller resets it) as soon as it meets anything
// outside its subset, so that encoding/xml reads the document instead: comments, CDATA,
// processing instructions other than a UTF-8 XML declaration, DTDs and directives, character
// references and other entities, namespace prefixes, non-ASCII names, and every syntax error.
func scanXML(b []byte, bd *dcBuilder) bool {
	var buf []byte
	i := 0
	for i < len(b) && !bd.stop {
		if b[i] != '<' {
			j := bytes.IndexByte(b[i:], '<')
			if j < 0 {
				j = len(b)
			} else {
				j += i
			}
			t, ok := xmlText(b[i:j], 0, &buf)
			if !ok {
				return false
			}
			bd.chars(t)
			i = j
			continue
		}
		if i+1 >= len(b) {
			return false
		}
		switch b[i+1] {
		case '?':
			n, ok := xmlDecl(b[i:])
			if !ok {
				return false
			}
			i += n
		case '!':
			return false
		case '/':
			j := i + 2
			name, n := xmlName(b[j:])
			if n == 0 {
				return false
			}
			j += n
			j = skipXMLSpace(b, j)
			if j >= len(b) || b[j] != '>' {
				return false
			}
			bd.end(name)
			i = j + 1
		default:
			j := i + 1
			name, n := xmlName(b[j:])
			if n == 0 {
				return false
			}
			j += n
			bd.start(name)
			for {
				k := skipXMLSpace(b, j)
				if k >= len(b) {
					return false
				}
				if b[k] == '>' {
					j = k + 1
					break
				}
				if b[k] == '/' {
					if k+1 >= len(b) || b[k+1] != '>' {
						return false
					}
					bd.end(name)
					j = k + 2
					break
				}
				if k == j {
					return false // attributes must be separated by white space
				}
				an, n := xmlName(b[k:])
				if n == 0 {
					return false
				}
				k = skipXMLSpace(b, k+n)
				if k >= len(b) || b[k] != '=' {
					return false
				}
				k = skipXMLSpace(b, k+1)
				if k >= len(b) || (b[k] != '"' && b[k] != '\'') {
					return false
				}
				q := b[k]
				e := bytes.IndexByte(b[k+1:], q)
				if e < 0 {
					return false
				}
				v, ok := xmlText(b[k+1:k+1+e], q, &buf)
				if !ok {
					return false
				}
				bd.attr(an, v)
				j = k + 1 + e + 1
			}
			i = j
		}
	}
	if !bd.stop {
		bd.eof()
	}
	return true
}

// xmlName reads an ASCII XML name without a namespace prefix at the start of b.
func xmlName(b []byte) ([]byte, int) {
	if len(b) == 0 {
		return nil, 0
	}
	c := b[0]
	if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_') {
		return nil, 0
	}
	n := 1
	for n < len(b) {
		c := b[n]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' {
			n++
			continue
		}
		if c == ':' || c >= utf8.RuneSelf {
			return nil, 0
		}
		break
	}
	return b[:n], n
}

func skipXMLSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// xmlText decodes character data (quote == 0) or an attribute value (the text between the
// quotes): the five predefined entities, CR LF and lone CR to LF. It returns t itself when
// nothing needs decoding, else the decoded text in *scratch (reused). ok is false for anything
// the fast path leaves to encoding/xml.
func xmlText(t []byte, quote byte, scratch *[]byte) ([]byte, bool) {
	plain := true
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c == '&' || c == '\r':
			plain = false
		case c == '<':
			return nil, false
		case c == ']':
			if quote == 0 && i+2 < len(t) && t[i+1] == ']' && t[i+2] == '>' {
				return nil, false
			}
		case c < 0x20 && c != '\t' && c != '\n':
			return nil, false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(t[i:])
			if r == utf8.RuneError && size == 1 || !(r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
				return nil, false
			}
			i += size - 1
		}
	}
	if plain {
		return t, true
	}
	buf := (*scratch)[:0]
	defer func() { *scratch = buf }()
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch c {
		case '\r':
			buf = append(buf, '\n')
			if i+1 < len(t) && t[i+1] == '\n' {
				i++
			}
		case '&':
			semi := bytes.IndexByte(t[i:], ';')
			if semi < 0 {
				return nil, false
			}
			switch string(t[i+1 : i+semi]) {
			case "lt":
				buf = append(buf, '<')
			case "gt":
				buf = append(buf, '>')
			case "amp":
				buf = append(buf, '&')
			case "quot":
				buf = append(buf, '"')
			case "apos":
				buf = append(buf, '\'')
			default:
				return nil, false
			}
			i += semi
		default:
			buf = append(buf, c)
		}
	}
	return buf, true
}

// xmlDecl reads an XML declaration at the start of b ("<?xml version="1.0" encoding="UTF-8"?>")
// and returns its length. ok is false for any other processing instruction, another version or
// an encoding other than UTF-8.
func xmlDecl(b []byte) (n int, ok bool) {
	if !bytes.HasPrefix(b, []byte("<?xml")) || len(b) < 7 {
		return 0, false
	}
	switch b[5] {
	case ' ', '\t', '\r', '\n':
	default:
		return 0, false
	}
	end := bytes.Index(b, []byte("?>"))
	if end < 0 {
		return 0, false
	}
	content := b[6:end]
	for _, c := range content {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c >= utf8.RuneSelf {
			return 0, false
		}
	}
	if v, st := declParam(content, "version"); st == paramBad || st == paramOK && string(v) != "1.0" {
		return 0, false
	}
	if v, st := declParam(content, "encoding"); st == paramBad || st == paramOK && len(v) > 0 && !equalFold(v, "utf-8") {
		return 0, false
	}
	return end + 2, true
}

const (
	paramAbsent = iota
	paramOK
	paramBad
)

// declParam finds param="value" or param='value' in an XML declaration. It reports paramBad
// for anything less plain (the fast path then defers to encoding/xml).
func declParam(s []byte, param string) ([]byte, int) {
	i := bytes.Index(s, []byte(param))
	if i < 0 {
		return nil, paramAbsent
	}
	r := s[i+len(param):]
	if len(r) < 2 || r[0] != '=' || (r[1] != '"' && r[1] != '\'') || bytes.Count(s, []byte(param)) != 1 {
		return nil, paramBad
	}
	j := bytes.IndexByte(r[2:], r[1])
	if j < 0 {
		return nil, paramBad
	}
	return r[2 : 2+j], paramOK
}
