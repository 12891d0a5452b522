package pec

import (
	"bytes"
	"mime"
)

// This file holds the MIME walker: an index-based scanner over the exact bytes of a message.
// It never copies the input: entities are offsets into the buffer they live in (the raw message,
// or a decoded buffer for a transfer-encoded message/rfc822 part), so the signed entity of a
// multipart/signed message is a sub-slice of the raw input.

// entity is one MIME entity: a header block followed by a body, inside buf[start:end].
type entity struct {
	buf       []byte
	start     int // first byte of the header block
	bodyStart int // first byte of the body
	end       int // end of the body (exclusive), before the line end that precedes a delimiter

	ctype    []byte // media type (type/subtype), trimmed, case as written; nil when absent
	ctParams []byte // Content-Type parameters (the text after the first ';'), unfolded
	cte      []byte // Content-Transfer-Encoding, trimmed
	disp     []byte // Content-Disposition parameters (the text after the first ';'), unfolded
}

func (e *entity) body() []byte { return e.buf[e.bodyStart:e.end] }

// isType reports whether the media type equals t (lower-case) case-insensitively.
func (e *entity) isType(t string) bool { return equalFold(e.ctype, t) }

// isMultipart reports whether the entity is multipart/*. An entity without a Content-Type is
// text/plain (RFC 2045), or message/rfc822 inside a multipart/digest, which PEC does not use.
func (e *entity) isMultipart() bool { return hasPrefixFold(e.ctype, "multipart/") }

// name returns the part's file name: the Content-Disposition filename, else the Content-Type
// name, RFC 2047 / RFC 2231 decoded. Nil when absent.
func (e *entity) name() []byte {
	if v, ok := param(e.disp, "filename"); ok && len(v) > 0 {
		return v
	}
	if v, ok := param(e.ctParams, "name"); ok && len(v) > 0 {
		return v
	}
	return nil
}

// headerScanner iterates over the fields of a header block in buf[pos:end].
type headerScanner struct {
	buf  []byte
	pos  int
	end  int
	body int // first byte of the body, set when next returns ok == false
	bad  bool
}

// next returns the next header field: its name and raw value (after the colon, with any folding
// line ends still in it). ok is false at the end of the header block (an empty line, the end of
// the region, or a line that is not a header field, which sets s.bad: the body then starts at
// that line).
func (s *headerScanner) next() (name, value []byte, ok bool) {
	b := s.buf
	if s.pos >= s.end {
		s.body = s.end
		return nil, nil, false
	}
	lineEnd, next := lineAt(b, s.pos, s.end)
	line := b[s.pos:lineEnd]
	if len(line) == 0 {
		s.body = next
		return nil, nil, false
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 || !validFieldName(line[:colon]) {
		s.bad = true
		s.body = s.pos
		return nil, nil, false
	}
	name = trimRightWSP(line[:colon])
	vstart := s.pos + colon + 1
	vend := lineEnd
	// Continuation lines start with a space or a tab.
	for next < s.end && (b[next] == ' ' || b[next] == '\t') {
		vend, next = lineAt(b, next, s.end)
	}
	s.pos = next
	return name, b[vstart:vend], true
}

// lineAt returns the end of the line starting at i (before CRLF or LF) and the start of the
// next line, within b[:end].
func lineAt(b []byte, i, end int) (lineEnd, next int) {
	j := bytes.IndexByte(b[i:end], '\n')
	if j < 0 {
		return end, end
	}
	lineEnd = i + j
	next = lineEnd + 1
	if lineEnd > i && b[lineEnd-1] == '\r' {
		lineEnd--
	}
	return lineEnd, next
}

func validFieldName(n []byte) bool {
	n = trimRightWSP(n)
	if len(n) == 0 {
		return false
	}
	for _, c := range n {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// header keys the walker records.
const (
	hkOther = iota
	hkContentType
	hkCTE
	hkDisposition
	// top-level only
	hkMessageID
	hkFrom
	hkTo
	hkCc
	hkDate
	hkSubject
	hkXRicevuta
	hkXTrasporto
	hkXTipoRicevuta
	hkXRiferimento
	hkXVerifica
	hkXMittente
	hkCount
)

// headerKey maps a field name to one of the hk constants, case-insensitively.
func headerKey(n []byte) int {
	switch len(n) {
	case 2:
		if equalFold(n, "to") {
			return hkTo
		}
		if equalFold(n, "cc") {
			return hkCc
		}
	case 4:
		if equalFold(n, "from") {
			return hkFrom
		}
		if equalFold(n, "date") {
			return hkDate
		}
	case 7:
		if equalFold(n, "subject") {
			return hkSubject
		}
	case 10:
		if equalFold(n, "message-id") {
			return hkMessageID
		}
		if equalFold(n, "x-ricevuta") {
			return hkXRicevuta
		}
		if equalFold(n, "x-mittente") {
			return hkXMittente
		}
	case 11:
		if equalFold(n, "x-trasporto") {
			return hkXTrasporto
		}
	case 12:
		if equalFold(n, "content-type") {
			return hkContentType
		}
	case 14:
		if equalFold(n, "x-tiporicevuta") {
			return hkXTipoRicevuta
		}
	case 19:
		if equalFold(n, "content-disposition") {
			return hkDisposition
		}
	case 20:
		if equalFold(n, "x-verificasicurezza") {
			return hkXVerifica
		}
	case 24:
		if equalFold(n, "x-riferimento-message-id") {
			return hkXRiferimento
		}
	case 25:
		if equalFold(n, "content-transfer-encoding") {
			return hkCTE
		}
	}
	return hkOther
}

// readEntity parses the header block of the entity in buf[start:end]. When top is non-nil the
// PEC header values are stored there (raw, first occurrence).
func (w *walker) readEntity(buf []byte, start, end int, top *[hkCount][]byte) entity {
	e := entity{buf: buf, start: start, end: end}
	s := headerScanner{buf: buf, pos: start, end: end}
	if top != nil && bytes.HasPrefix(buf[start:end], []byte("From ")) {
		// An mbox separator line ("From sender date"), unless it is an obsolete-syntax
		// "From : address" field: not part of the message proper.
		lineEnd, next := lineAt(buf, start, end)
		line := buf[start:lineEnd]
		if colon := bytes.IndexByte(line, ':'); colon < 0 || !validFieldName(line[:colon]) {
			s.pos = next
		}
	}
	n := 0
	for {
		name, value, ok := s.next()
		if !ok {
			break
		}
		n++
		if n > w.lim.MaxHeaders {
			if n == w.lim.MaxHeaders+1 {
				w.problem(ErrTooManyHeaders, "more than %d header fields", w.lim.MaxHeaders)
			}
			continue
		}
		if s.pos-start > w.lim.MaxHeaderSize {
			if !w.hdrTooBig {
				w.hdrTooBig = true
				w.problem(ErrTooLarge, "header block larger than %d bytes", w.lim.MaxHeaderSize)
			}
			continue
		}
		k := headerKey(name)
		switch k {
		case hkOther:
		case hkContentType:
			if e.ctype == nil {
				// Parameters are read folded: param treats line ends as white space.
				t, p := splitParams(value)
				e.ctype = t
				if e.ctype == nil {
					e.ctype = []byte{}
				}
				e.ctParams = p
			}
		case hkCTE:
			if e.cte == nil {
				e.cte = bytes.TrimSpace(unfold(value))
			}
		case hkDisposition:
			if e.disp == nil {
				_, e.disp = splitParams(value)
				if e.disp == nil {
					e.disp = []byte{}
				}
			}
		default:
			if top != nil && top[k] == nil {
				top[k] = value
			}
		}
	}
	if s.bad {
		w.problem(ErrMalformedHeader, "line %q is not a header field; body assumed to start there", clip(buf[s.body:end], 40))
	}
	e.bodyStart = s.body
	return e
}

// delimiter finds the next delimiter line "--boundary" (or the close delimiter
// "--boundary--") in b[from:end], where region is where the enclosing body starts (a delimiter
// may start there without a preceding line end). It returns the start of the delimiter line, the
// start of the line after it, and whether it is the close delimiter. The search looks for
// boundary[skip:], which leaves out the runs of '-' most boundaries start with (they would
// make every dashed line a candidate), and checks the rest around each hit.
func delimiter(b []byte, region, from, end int, boundary []byte, skip int) (lineStart, next int, closing, found bool) {
	anchor := boundary[skip:]
	for from < end {
		i := bytes.Index(b[from:end], anchor)
		if i < 0 {
			return 0, 0, false, false
		}
		p := from + i - skip // where the boundary would start
		from += i + 1
		ls := p - 2
		if ls < region || b[ls] != '-' || b[ls+1] != '-' || (ls > region && b[ls-1] != '\n') ||
			!bytes.Equal(b[p:p+skip], boundary[:skip]) {
			continue
		}
		q := p + len(boundary)
		closing = false
		if q+1 < end && b[q] == '-' && b[q+1] == '-' {
			closing = true
			q += 2
		}
		for q < end && (b[q] == ' ' || b[q] == '\t') {
			q++
		}
		switch {
		case q == end:
			return ls, end, closing, true
		case b[q] == '\n':
			return ls, q + 1, closing, true
		case b[q] == '\r' && q+1 < end && b[q+1] == '\n':
			return ls, q + 2, closing, true
		case b[q] == '\r' && q+1 == end:
			return ls, end, closing, true
		}
	}
	return 0, 0, false, false
}

// anchorSkip returns how many leading punctuation characters of boundary the search skips.
func anchorSkip(boundary []byte) int {
	k := 0
	for k < len(boundary)-4 && (boundary[k] == '-' || boundary[k] == '=' || boundary[k] == '_') {
		k++
	}
	return k
}

// beforeLineEnd returns i moved back over the CRLF or LF that ends the previous line, but not
// below min.
func beforeLineEnd(b []byte, i, min int) int {
	if i > min && b[i-1] == '\n' {
		i--
		if i > min && b[i-1] == '\r' {
			i--
		}
	}
	return i
}

// partIter iterates over the body parts of a multipart entity.
type partIter struct {
	b        []byte
	boundary []byte
	skip     int // see delimiter
	region   int // start of the multipart body
	pos      int // start of the next part's content; -1 before the first delimiter
	end      int
	done     bool
	closed   bool // the close delimiter was seen
}

func newPartIter(e *entity, boundary []byte) partIter {
	return partIter{b: e.buf, boundary: boundary, skip: anchorSkip(boundary), region: e.bodyStart, pos: -1, end: e.end}
}

// next returns the range of the next body part, [start, end) within it.b.
func (it *partIter) next() (start, end int, ok bool) {
	if it.done {
		return 0, 0, false
	}
	if it.pos < 0 {
		_, next, closing, found := delimiter(it.b, it.region, it.region, it.end, it.boundary, it.skip)
		if !found || closing {
			it.done = true
			it.closed = closing
			return 0, 0, false
		}
		it.pos = next
	}
	start = it.pos
	ls, next, closing, found := delimiter(it.b, it.region, start, it.end, it.boundary, it.skip)
	if !found {
		it.done = true
		return start, it.end, true
	}
	end = beforeLineEnd(it.b, ls, start)
	it.pos = next
	if closing {
		it.done = true
		it.closed = true
	}
	return start, end, true
}

// splitParams splits a header value into its first token (before ';') and the parameters.
func splitParams(v []byte) (first, params []byte) {
	i := bytes.IndexByte(v, ';')
	if i < 0 {
		return bytes.TrimSpace(v), nil
	}
	return bytes.TrimSpace(v[:i]), v[i+1:]
}

// param returns the value of parameter key (lower-case) in a parameter list "a=b; c="d"". The
// value aliases params unless it was quoted with escapes or encoded (RFC 2047 inside quotes, RFC
// 2231 extended parameters), in which case it is decoded into a new slice.
func param(params []byte, key string) ([]byte, bool) {
	p := params
	extended := false
	for len(p) > 0 {
		// skip separators and white space
		for len(p) > 0 && (p[0] == ';' || isWSP(p[0]) || p[0] == '\r' || p[0] == '\n') {
			p = p[1:]
		}
		if len(p) == 0 {
			break
		}
		eq := -1
		for i, c := range p {
			if c == '=' || c == ';' {
				if c == '=' {
					eq = i
				}
				break
			}
		}
		if eq < 0 {
			// attribute without value: skip to the next ';'
			i := bytes.IndexByte(p, ';')
			if i < 0 {
				break
			}
			p = p[i:]
			continue
		}
		k := bytes.TrimSpace(p[:eq])
		p = p[eq+1:]
		for len(p) > 0 && isWSP(p[0]) {
			p = p[1:]
		}
		var val []byte
		escaped := false
		if len(p) > 0 && p[0] == '"' {
			i := 1
			for i < len(p) && p[i] != '"' {
				if p[i] == '\\' && i+1 < len(p) {
					escaped = true
					i++
				}
				i++
			}
			val = p[1:min(i, len(p))]
			if i < len(p) {
				i++
			}
			p = p[i:]
		} else {
			i := 0
			for i < len(p) && p[i] != ';' && !isWSP(p[i]) {
				i++
			}
			val = p[:i]
			p = p[i:]
		}
		if equalFold(k, key) {
			if escaped {
				val = unescapeQuoted(val)
			}
			if (key == "name" || key == "filename") && bytes.Contains(val, []byte("=?")) {
				if s, err := wordDecoder.DecodeHeader(string(val)); err == nil {
					val = []byte(s)
				}
			}
			return val, true
		}
		if len(k) > len(key) && k[len(key)] == '*' && equalFold(k[:len(key)], key) {
			extended = true
		}
	}
	if extended {
		// RFC 2231: let the standard library join continuations and decode charsets.
		if _, m, err := mime.ParseMediaType("x/x;" + string(params)); err == nil {
			if v, ok := m[key]; ok {
				return []byte(v), true
			}
		}
	}
	return nil, false
}

func unescapeQuoted(v []byte) []byte {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		out = append(out, v[i])
	}
	return out
}

// unfold removes the line ends of a folded header value (RFC 5322 section 2.2.3) and trims it.
// It allocates only when the value was folded.
func unfold(v []byte) []byte {
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return bytes.TrimSpace(v)
	}
	out := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return bytes.TrimSpace(out)
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

func trimRightWSP(b []byte) []byte {
	for len(b) > 0 && isWSP(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lowerASCII(b[i]) != s[i] {
			return false
		}
	}
	return true
}

func hasPrefixFold(b []byte, s string) bool { return len(b) >= len(s) && equalFold(b[:len(s)], s) }

func hasSuffixFold(b []byte, s string) bool {
	return len(b) >= len(s) && equalFold(b[len(b)-len(s):], s)
}

// lowerString returns b as a lower-case string.
func lowerString(b []byte) string {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return string(bytes.ToLower(b))
		}
	}
	return string(b)
}

// clip returns at most n bytes of b, for error details.
func clip(b []byte, n int) []byte {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	if len(b) > n {
		b = b[:n]
	}
	return b
}
