package pectest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"strings"
	"time"
	"unicode/utf8"
)

// rome returns t in Italian civil time (CET/CEST, EU summer-time rule) and the zone string used
// by daticert.xml and the texts ("+0100" or "+0200"). Computed here so that output does not
// depend on the system time zone database.
func rome(t time.Time) (time.Time, string) {
	t = t.UTC()
	y := t.Year()
	start := lastSunday(y, time.March).Add(time.Hour) // 01:00 UTC
	end := lastSunday(y, time.October).Add(time.Hour) // 01:00 UTC
	if !t.Before(start) && t.Before(end) {
		return t.In(time.FixedZone("CEST", 2*3600)), "+0200"
	}
	return t.In(time.FixedZone("CET", 3600)), "+0100"
}

func lastSunday(year int, month time.Month) time.Time {
	d := time.Date(year, month+1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	for d.Weekday() != time.Sunday {
		d = d.AddDate(0, 0, -1)
	}
	return d
}

// rfc5322Date formats a Date header value in Italian time, like "Fri, 18 Aug 2023 17:37:14 +0200".
func rfc5322Date(t time.Time) string {
	lt, _ := rome(t)
	return lt.Format("Mon, 02 Jan 2006 15:04:05 -0700")
}

// receivedDate is the date of a Received line: "Fri, 18 Aug 2023 17:37:09 +0200 (CEST)".
func receivedDate(t time.Time) string {
	lt, _ := rome(t)
	return lt.Format("Mon, 02 Jan 2006 15:04:05 -0700 (MST)")
}

// latin1 converts s to ISO-8859-1, replacing characters it cannot hold with '?'.
func latin1(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r == utf8.RuneError || r > 0xff {
			b = append(b, '?')
			continue
		}
		b = append(b, byte(r))
	}
	return b
}

// quotedPrintable encodes ISO-8859-1 text (LF line ends) as quoted-printable the way the real
// providers do: hard line breaks kept, soft breaks ("=") so that no line exceeds 76 characters,
// trailing white space encoded. Output uses LF.
func quotedPrintable(text []byte) []byte {
	var out bytes.Buffer
	lines := bytes.Split(text, []byte("\n"))
	for i, line := range lines {
		toks := make([]string, 0, len(line))
		total := 0
		for j, c := range line {
			var tok string
			switch {
			case c == ' ' || c == '\t':
				if j == len(line)-1 {
					tok = fmt.Sprintf("=%02X", c)
				} else {
					tok = string(c)
				}
			case c >= 33 && c <= 126 && c != '=':
				tok = string(c)
			default:
				tok = fmt.Sprintf("=%02X", c)
			}
			toks = append(toks, tok)
			total += len(tok)
		}
		// A line may be 76 characters long; a soft-broken line is 75 characters plus "=".
		n := 0
		for _, tok := range toks {
			if n+total > 76 && n+len(tok) > 75 {
				out.WriteString("=\n")
				n = 0
			}
			out.WriteString(tok)
			n += len(tok)
			total -= len(tok)
		}
		if i < len(lines)-1 {
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// base64Lines encodes data in base64 with lines of width characters, each line ending in LF.
func base64Lines(data []byte, width int) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var out bytes.Buffer
	for len(enc) > width {
		out.WriteString(enc[:width])
		out.WriteByte('\n')
		enc = enc[width:]
	}
	if enc != "" {
		out.WriteString(enc)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// xmlEscape escapes text for daticert.xml.
func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		default:
			if r < 0x20 && r != '\t' {
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// htmlText escapes text for the HTML alternative, accented letters as entities like Aruba.
func htmlText(s string) string {
	s = html.EscapeString(s)
	s = strings.ReplaceAll(s, "&#34;", "&quot;")
	s = strings.ReplaceAll(s, "&#39;", "'")
	r := strings.NewReplacer("è", "&egrave;", "é", "&eacute;", "à", "&agrave;", "ì", "&igrave;", "ò", "&ograve;", "ù", "&ugrave;")
	return r.Replace(s)
}

// toCRLF converts LF line ends to CRLF (input must use LF only).
func toCRLF(b []byte) []byte {
	n := bytes.Count(b, []byte("\n"))
	out := make([]byte, 0, len(b)+n)
	for _, c := range b {
		if c == '\n' {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// toLF converts CRLF line ends to LF (a lone CR is kept).
func toLF(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
}

// headerEncode returns s as is when it is printable ASCII, else an RFC 2047 Q-encoded word in
// UTF-8, as clients do for subjects and display names.
func headerEncode(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.WriteString("=?utf-8?Q?")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			b.WriteByte('_')
		case c >= 0x21 && c <= 0x7e && c != '=' && c != '?' && c != '_' && c != '"':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	b.WriteString("?=")
	return b.String()
}
