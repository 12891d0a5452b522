package pectest

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"mime"
	"strings"

	"github.com/pecarchive/pecarchive/pec"
)

// BreveHash returns the value a breve delivery receipt writes in the .hash part that replaces an
// original part: the SHA-1 (40 lower-case hex characters) of the part body as transmitted, that
// is the transfer-encoded bytes (base64 text for an attachment) from after the blank line ending
// the part's header block up to, not including, the line break before the next boundary
// delimiter, in canonical CRLF form.
func BreveHash(body []byte) string {
	h := sha1.Sum(toCRLF(toLF(body)))
	return hex.EncodeToString(h[:])
}

// maxMIMEDepth bounds the recursion of the breve transformation.
const maxMIMEDepth = 16

// breveCopy returns msg (LF line ends) with every part that has a name or filename parameter,
// and every message/rfc822 part, replaced by a text/plain part named <filename>.hash holding
// [BreveHash] of the part body; the top-level entity is never replaced.
func breveCopy(msg []byte) ([]byte, []pec.HashPart) {
	var hashes []pec.HashPart
	out := breveEntity(msg, true, 0, &hashes)
	return out, hashes
}

func breveEntity(ent []byte, top bool, depth int, hashes *[]pec.HashPart) []byte {
	hdr, body, ok := splitHeader(ent)
	if !ok || depth > maxMIMEDepth {
		return ent
	}
	fields := parseFields(hdr)
	ctype, cparams, _ := mime.ParseMediaType(fields["content-type"])
	_, dparams, _ := mime.ParseMediaType(fields["content-disposition"])
	if !top {
		name := dparams["filename"]
		if name == "" {
			name = cparams["name"]
		}
		if name != "" || ctype == "message/rfc822" {
			if name == "" {
				name = "messaggio.eml"
			}
			if dec, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
				name = dec
			}
			sum := BreveHash(body)
			*hashes = append(*hashes, pec.HashPart{Name: name, SHA1: sum})
			enc := headerEncode(name + ".hash")
			return []byte("Content-Type: text/plain; name=\"" + enc + "\"\n" +
				"Content-Transfer-Encoding: 7bit\n" +
				"Content-Disposition: attachment; filename=\"" + enc + "\"\n\n" + sum + "\n")
		}
	}
	if !strings.HasPrefix(ctype, "multipart/") || cparams["boundary"] == "" {
		return ent
	}
	ranges := partRanges(body, cparams["boundary"])
	var out bytes.Buffer
	out.Write(ent[:len(ent)-len(body)])
	prev := 0
	for _, r := range ranges {
		out.Write(body[prev:r[0]])
		out.Write(breveEntity(body[r[0]:r[1]], false, depth+1, hashes))
		prev = r[1]
	}
	out.Write(body[prev:])
	return out.Bytes()
}

// splitHeader splits an entity (LF) at the blank line ending its header block.
func splitHeader(ent []byte) (hdr, body []byte, ok bool) {
	if bytes.HasPrefix(ent, []byte("\n")) {
		return nil, ent[1:], true
	}
	i := bytes.Index(ent, []byte("\n\n"))
	if i < 0 {
		return ent, nil, false
	}
	return ent[:i+1], ent[i+2:], true
}

// parseFields returns the unfolded header fields, keyed by lower-case name (first occurrence).
func parseFields(hdr []byte) map[string]string {
	m := map[string]string{}
	var name, val string
	flush := func() {
		if name != "" {
			if _, dup := m[name]; !dup {
				m[name] = strings.TrimSpace(val)
			}
		}
	}
	for _, line := range strings.Split(string(hdr), "\n") {
		if line == "" {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			val += " " + strings.TrimSpace(line)
			continue
		}
		flush()
		name, val = "", ""
		if i := strings.IndexByte(line, ':'); i > 0 {
			name, val = strings.ToLower(strings.TrimSpace(line[:i])), line[i+1:]
		}
	}
	flush()
	return m
}

// partRanges returns the [start, end) ranges of the body parts of a multipart body (LF): each
// starts after its delimiter line and ends before the line break preceding the next delimiter.
func partRanges(body []byte, boundary string) [][2]int {
	delim := []byte("--" + boundary)
	var ranges [][2]int
	start := -1
	for i := 0; i < len(body); {
		j := bytes.Index(body[i:], delim)
		if j < 0 {
			break
		}
		pos := i + j
		if pos > 0 && body[pos-1] != '\n' {
			i = pos + len(delim)
			continue
		}
		after := pos + len(delim)
		closing := bytes.HasPrefix(body[after:], []byte("--"))
		eol := bytes.IndexByte(body[after:], '\n')
		if start >= 0 {
			end := pos - 1
			if end < start {
				end = start
			}
			ranges = append(ranges, [2]int{start, end})
		}
		if closing || eol < 0 {
			break
		}
		start = after + eol + 1
		i = start
	}
	return ranges
}
