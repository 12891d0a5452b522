package smime

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
)

// Limits of LDIF parsing.
const (
	maxLDIFSize     = 32 << 20
	maxLDIFEntries  = 100000
	maxLDIFAttrs    = 10000 // per entry
	maxLDIFProblems = 1000  // per entry and per file; further ones are counted, not kept
)

// LDIF is a parsed LDIF content file (RFC 2849).
type LDIF struct {
	Version  int // the version: line, 0 when absent
	Entries  []LDIFEntry
	Problems []string // problems outside any record
}

// LDIFEntry is one content record.
type LDIFEntry struct {
	DN       string
	Line     int // line number of the dn: line (1-based)
	Attrs    []LDIFAttr
	Problems []string // values that could not be decoded (and were left out), syntax errors
}

// LDIFAttr is one attribute value of a record.
type LDIFAttr struct {
	Name    string   // attribute type as written, without options
	Options []string // attribute options, for example "binary" in "providerCertificate;binary"
	Value   []byte
}

// Values returns the values of the attribute type name (compared case-insensitively, options
// ignored), in file order.
func (e *LDIFEntry) Values(name string) [][]byte {
	var out [][]byte
	for _, a := range e.Attrs {
		if strings.EqualFold(a.Name, name) {
			out = append(out, a.Value)
		}
	}
	return out
}

// Value returns the first value of the attribute type name as a string, "" when absent.
func (e *LDIFEntry) Value(name string) string {
	for _, a := range e.Attrs {
		if strings.EqualFold(a.Name, name) {
			return string(a.Value)
		}
	}
	return ""
}

func addProblem(list *[]string, format string, args ...any) {
	if len(*list) < maxLDIFProblems {
		*list = append(*list, fmt.Sprintf(format, args...))
	}
}

// ParseLDIF parses an LDIF content file: comments, folded lines, "attr: value",
// "attr:: base64" and attribute options such as ";binary". URL values ("attr:< url") are not
// fetched; they are reported as problems. Change records are reported and skipped. A value that
// cannot be decoded is left out of its record and reported in the record's Problems, so one
// damaged record does not hide the others. ParseLDIF fails (with [ErrTooLarge]) only on input
// over 32 MiB or with more than 100,000 records.
func ParseLDIF(data []byte) (*LDIF, error) {
	if len(data) > maxLDIFSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, maxLDIFSize)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	out := &LDIF{}
	var cur *LDIFEntry
	skip := false // inside a record being skipped
	first := true // no logical line seen yet
	endRecord := func() {
		cur, skip = nil, false
	}
	var perr error
	handle := func(line string, n int) {
		if perr != nil {
			return
		}
		if line == "" {
			endRecord()
			return
		}
		if skip {
			return
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			if cur != nil {
				addProblem(&cur.Problems, "line %d: no attribute type", n)
			} else {
				addProblem(&out.Problems, "line %d: no attribute type", n)
				skip = true
			}
			return
		}
		desc, rest := line[:colon], line[colon+1:]
		parts := strings.Split(desc, ";")
		name := strings.TrimSpace(parts[0])
		var value []byte
		var verr string
		switch {
		case strings.HasPrefix(rest, ":"):
			b64 := strings.Map(func(r rune) rune {
				if r == ' ' || r == '\t' {
					return -1
				}
				return r
			}, rest[1:])
			v, err := base64.StdEncoding.DecodeString(b64)
			if err != nil {
				verr = fmt.Sprintf("line %d: %s: bad base64 value: %v", n, desc, err)
			}
			value = v
		case strings.HasPrefix(rest, "<"):
			verr = fmt.Sprintf("line %d: %s: URL values are not fetched", n, desc)
		default:
			value = []byte(strings.TrimLeft(rest, " "))
		}
		if first && cur == nil && strings.EqualFold(name, "version") {
			first = false
			if verr == "" && strings.TrimSpace(string(value)) == "1" {
				out.Version = 1
			} else {
				addProblem(&out.Problems, "line %d: unsupported LDIF version %q", n, value)
			}
			return
		}
		first = false
		if cur == nil {
			if !strings.EqualFold(name, "dn") {
				addProblem(&out.Problems, "line %d: record does not start with dn:", n)
				skip = true
				return
			}
			if len(out.Entries) >= maxLDIFEntries {
				perr = fmt.Errorf("%w: more than %d records", ErrTooLarge, maxLDIFEntries)
				return
			}
			out.Entries = append(out.Entries, LDIFEntry{DN: string(value), Line: n})
			cur = &out.Entries[len(out.Entries)-1]
			if verr != "" {
				addProblem(&cur.Problems, "%s", verr)
			}
			return
		}
		if verr != "" {
			addProblem(&cur.Problems, "%s", verr)
			return
		}
		switch strings.ToLower(name) {
		case "changetype":
			if !strings.EqualFold(strings.TrimSpace(string(value)), "add") {
				addProblem(&out.Problems, "line %d: change record %q (changetype %s) skipped", n, cur.DN, value)
				out.Entries = out.Entries[:len(out.Entries)-1]
				cur, skip = nil, true
			}
			return
		case "control":
			return
		}
		if len(cur.Attrs) >= maxLDIFAttrs {
			addProblem(&cur.Problems, "line %d: more than %d attribute values; rest ignored", n, maxLDIFAttrs)
			skip = true
			return
		}
		var opts []string
		for _, o := range parts[1:] {
			if o = strings.TrimSpace(o); o != "" {
				opts = append(opts, o)
			}
		}
		cur.Attrs = append(cur.Attrs, LDIFAttr{Name: name, Options: opts, Value: value})
	}
	unfold(data, handle)
	if perr != nil {
		return nil, perr
	}
	// Entries may have been appended after cur pointed into the slice: cur is only used while
	// its entry is the last one, so pointers stay valid until the next append, which only
	// happens after endRecord.
	return out, nil
}

// unfold splits data into logical lines (folded continuation lines joined, comments dropped)
// and calls fn for each, with "" for each record separator. n is the first physical line.
func unfold(data []byte, fn func(line string, n int)) {
	var (
		buf       []byte
		have      bool
		start     int
		inComment bool
	)
	flush := func() {
		if have {
			fn(string(buf), start)
			have = false
		}
	}
	n := 0
	for len(data) > 0 {
		n++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		switch {
		case len(l) > 0 && l[0] == ' ':
			if inComment || !have {
				continue
			}
			buf = append(buf, l[1:]...)
		case len(l) == 0 || isBlank(l):
			flush()
			inComment = false
			fn("", n)
		case l[0] == '#':
			flush()
			inComment = true
		default:
			flush()
			inComment = false
			buf = append(buf[:0], l...)
			have, start = true, n
		}
	}
	flush()
}

func isBlank(l []byte) bool {
	for _, c := range l {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}
