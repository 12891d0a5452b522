package pec

import (
	"bytes"
	"encoding/base64"
)

// decode returns the transfer-decoded body of e. Identity encodings (7bit, 8bit, binary, none)
// return a sub-slice of the buffer, capacity-limited so appending cannot overwrite the input.
func (w *walker) decode(e *entity) []byte {
	body := e.body()
	body = body[:len(body):len(body)]
	switch {
	case len(e.cte) == 0, equalFold(e.cte, "7bit"), equalFold(e.cte, "8bit"), equalFold(e.cte, "binary"):
		return body
	case equalFold(e.cte, "base64"):
		out, clean := decodeBase64(body)
		if !clean {
			w.problem(ErrEncoding, "bad base64 data (decoded leniently)")
		}
		return out
	case equalFold(e.cte, "quoted-printable"):
		out, clean := decodeQP(body)
		if !clean {
			w.problem(ErrEncoding, "bad quoted-printable data (decoded leniently)")
		}
		return out
	default:
		w.problem(ErrEncoding, "unknown Content-Transfer-Encoding %q (body taken as is)", clip(e.cte, 40))
		return body
	}
}

// decodeBase64 decodes base64 text with line breaks. Malformed input is decoded leniently
// (characters outside the alphabet are skipped, padding may be missing, concatenated padded
// blocks are decoded in turn) and clean is false.
func decodeBase64(b []byte) (out []byte, clean bool) {
	out = make([]byte, base64.StdEncoding.DecodedLen(len(b)))
	if n, err := base64.StdEncoding.Decode(out, b); err == nil {
		return out[:n], true
	}
	return decodeBase64Lenient(b, out[:0])
}

var b64val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	return t
}()

func decodeBase64Lenient(b, out []byte) ([]byte, bool) {
	clean := true
	var q [4]byte
	n := 0
	flush := func() {
		switch n {
		case 1:
			clean = false // a lone sextet carries no full byte
		case 2:
			out = append(out, q[0]<<2|q[1]>>4)
		case 3:
			out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2)
		case 4:
			out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2, q[2]<<6|q[3])
		}
		n = 0
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if v := b64val[c]; v != 0xff {
			q[n] = v
			n++
			if n == 4 {
				flush()
			}
			continue
		}
		switch c {
		case '=':
			// padding ends the quantum
			if n < 2 {
				clean = false
			}
			flush()
		case ' ', '\t', '\r', '\n':
		default:
			clean = false
		}
	}
	if n > 0 {
		clean = false
		flush()
	}
	return out, clean
}

// decodeQP decodes quoted-printable text (RFC 2045 section 6.7), keeping the line ends as
// they are. Invalid escapes are kept literally and clean is false.
func decodeQP(b []byte) (out []byte, clean bool) {
	out = make([]byte, 0, len(b))
	clean = true
	for i := 0; i < len(b); {
		c := b[i]
		switch c {
		case '=':
			if i+2 < len(b) && unhex(b[i+1]) >= 0 && unhex(b[i+2]) >= 0 {
				out = append(out, byte(unhex(b[i+1])<<4|unhex(b[i+2])))
				i += 3
				continue
			}
			// soft line break: '=' then optional white space, then the line end
			j := i + 1
			for j < len(b) && isWSP(b[j]) {
				j++
			}
			switch {
			case j == len(b):
				i = j
			case b[j] == '\n':
				i = j + 1
			case b[j] == '\r' && j+1 < len(b) && b[j+1] == '\n':
				i = j + 2
			default:
				clean = false
				out = append(out, '=')
				i++
			}
		case ' ', '\t':
			// trailing white space before a line end is not part of the data
			j := i
			for j < len(b) && isWSP(b[j]) {
				j++
			}
			if j == len(b) || b[j] == '\n' || (b[j] == '\r' && j+1 < len(b) && b[j+1] == '\n') {
				i = j
				continue
			}
			out = append(out, b[i:j]...)
			i = j
		default:
			out = append(out, c)
			i++
		}
	}
	return out, clean
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	}
	return -1
}

// Canonicalize returns b with every bare LF turned into CRLF (the canonical form that S/MIME
// signatures cover); existing CRLF pairs are left alone. It returns b itself, without
// allocating, when b has no bare LF.
func Canonicalize(b []byte) []byte {
	bare := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			bare++
		}
		i++
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	last := 0
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			out = append(out, b[last:i]...)
			out = append(out, '\r', '\n')
			last = i + 1
		}
		i++
	}
	return append(out, b[last:]...)
}
