package pec

import (
	"strconv"
)

// walk modes
const (
	modeScope = iota // the top-level scope: daticert, postacert candidates, .hash parts
	modeHash         // inside postacert.eml of a breve receipt: .hash parts only
)

// walker holds the state of one Parse call.
type walker struct {
	lim       Limits
	msg       *Message
	path      []int // current MIME part path (1-based indices), for problem reports
	pathBuf   [16]int
	prefix    string // prepended to the path, for parts inside postacert.eml
	parts     int
	hdrTooBig bool
	tooMany   bool

	top [hkCount][]byte // raw top-level header values

	// findings of the scope walk
	daticert       entity
	haveDaticert   bool
	daticertAnon   bool // daticert was found by media type, not by name
	postacert      entity
	havePostacert  bool
	postacertNamed bool
	hashEnts       []hashEnt // .hash parts of the scope, read once the kind is known

	// visit, when set, is called for every entity walked (tests and fuzzing).
	visit func(e entity, depth int)
}

func newWalker(lim Limits, m *Message) *walker {
	w := &walker{lim: lim, msg: m}
	w.path = w.pathBuf[:0]
	return w
}

// problem records a problem at the current MIME path.
func (w *walker) problem(err error, format string, args ...any) {
	w.msg.Problems = append(w.msg.Problems, newProblem(err, w.pathString(), format, args...))
}

// problemAt records a problem at a named place.
func (w *walker) problemAt(err error, part, format string, args ...any) {
	w.msg.Problems = append(w.msg.Problems, newProblem(err, part, format, args...))
}

func (w *walker) pathString() string {
	if len(w.path) == 0 {
		return w.prefix
	}
	b := make([]byte, 0, len(w.prefix)+1+2*len(w.path))
	if w.prefix != "" {
		b = append(b, w.prefix...)
		b = append(b, ':')
	}
	for i, n := range w.path {
		if i > 0 {
			b = append(b, '.')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return string(b)
}

// countPart counts one more MIME part, reporting false once MaxParts is exceeded.
func (w *walker) countPart() bool {
	if w.tooMany {
		return false
	}
	w.parts++
	if w.parts > w.lim.MaxParts {
		w.tooMany = true
		w.problem(ErrTooManyParts, "more than %d MIME parts", w.lim.MaxParts)
		return false
	}
	return true
}

// walk visits entity e at nesting depth and everything below it (message/rfc822 parts are not
// entered: what an attached message contains is not this message's structure).
func (w *walker) walk(ev entity, depth, mode int) {
	e := &ev
	if w.visit != nil {
		w.visit(*e, depth)
	}
	switch {
	case e.isMultipart():
		w.walkMultipart(e, depth, mode)
	case e.isType("message/rfc822"):
		if mode == modeScope {
			w.foundMessage(e)
		}
	default:
		w.leaf(e, mode)
	}
}

func (w *walker) walkMultipart(e *entity, depth, mode int) {
	if depth >= w.lim.MaxDepth {
		w.problem(ErrTooDeep, "multipart nested deeper than %d levels", w.lim.MaxDepth)
		return
	}
	boundary, ok := param(e.ctParams, "boundary")
	if !ok || len(boundary) == 0 {
		w.problem(ErrMalformedMIME, "%s without boundary", clip(e.ctype, 40))
		return
	}
	it := newPartIter(e, boundary)
	n := 0
	for {
		s, end, ok := it.next()
		if !ok {
			break
		}
		n++
		if !w.countPart() {
			return
		}
		w.path = append(w.path, n)
		child := w.readEntity(e.buf, s, end, nil)
		w.walk(child, depth+1, mode)
		w.path = w.path[:len(w.path)-1]
	}
	w.multipartEnd(&it, n)
}

func (w *walker) multipartEnd(it *partIter, n int) {
	switch {
	case n == 0:
		w.problem(ErrMalformedMIME, "no body part: boundary %q not found", clip(it.boundary, 80))
	case !it.closed:
		w.problem(ErrTruncated, "multipart has no close delimiter")
	}
}

func (w *walker) foundMessage(e *entity) {
	named := equalFold(e.name(), "postacert.eml")
	if !w.havePostacert || (named && !w.postacertNamed) {
		w.postacert = *e
		w.havePostacert = true
		w.postacertNamed = named
	}
}

func (w *walker) leaf(e *entity, mode int) {
	name := e.name()
	if hasSuffixFold(name, ".hash") {
		if mode == modeScope {
			// kept for later: only a delivery receipt's hash parts matter
			w.hashEnts = append(w.hashEnts, hashEnt{*e, w.pathString()})
		} else {
			w.hashPart(e, name)
		}
		return
	}
	if mode != modeScope {
		return
	}
	if equalFold(name, "daticert.xml") || equalFold(name, "certdata.xml") {
		if !w.haveDaticert || w.daticertAnon {
			w.daticert = *e
			w.haveDaticert = true
			w.daticertAnon = false
		}
		return
	}
	if name == nil && !w.haveDaticert && (e.isType("application/xml") || e.isType("text/xml")) {
		w.daticert = *e
		w.haveDaticert = true
		w.daticertAnon = true
	}
}

type hashEnt struct {
	e    entity
	path string
}

// hashPart records a .hash part of a breve receipt.
func (w *walker) hashPart(e *entity, name []byte) {
	body := w.decode(e)
	h := trimSpaceBytes(body)
	if len(h) != 40 || !isHex(h) {
		w.problem(ErrMalformedMIME, "hash part %q does not hold a SHA-1 hex digest", clip(name, 80))
		return
	}
	w.msg.HashParts = append(w.msg.HashParts, HashPart{
		Name: string(name[:len(name)-len(".hash")]),
		SHA1: lowerString(h),
	})
}

// signed handles a top-level multipart/signed entity (RFC 1847, RFC 8551).
func (w *walker) signed(e *entity) {
	sig := &Signature{Form: SignatureDetached}
	w.msg.Signature = sig
	if v, ok := param(e.ctParams, "protocol"); ok {
		sig.Protocol = lowerString(v)
	}
	if v, ok := param(e.ctParams, "micalg"); ok {
		sig.Micalg = lowerString(v)
	}
	boundary, ok := param(e.ctParams, "boundary")
	if !ok || len(boundary) == 0 {
		w.problem(ErrMalformedMIME, "multipart/signed without boundary")
		return
	}
	it := newPartIter(e, boundary)
	s, end, ok := it.next()
	if !ok {
		w.multipartEnd(&it, 0)
		w.problem(ErrSignatureMissing, "multipart/signed has no parts")
		return
	}
	w.countPart()
	sig.Content = e.buf[s:end:end]
	w.path = append(w.path, 1)
	content := w.readEntity(e.buf, s, end, nil)
	w.path = w.path[:0]

	n := 1
	if s2, end2, ok := it.next(); ok {
		n++
		w.countPart()
		w.path = append(w.path, 2)
		se := w.readEntity(e.buf, s2, end2, nil)
		if w.visit != nil {
			w.visit(se, 1)
		}
		if se.isType("application/pkcs7-signature") || se.isType("application/x-pkcs7-signature") {
			sig.CMS = w.decode(&se)
			if len(sig.CMS) == 0 {
				w.problem(ErrSignatureMissing, "empty signature part")
			}
		} else {
			w.problem(ErrSignatureMissing, "second part of multipart/signed is %q, not a PKCS#7 signature", clip(se.ctype, 60))
		}
		w.path = w.path[:0]
		for !it.done {
			if _, _, ok := it.next(); ok {
				n++
			}
		}
	} else {
		w.problem(ErrSignatureMissing, "multipart/signed has no signature part")
	}
	w.multipartEnd(&it, n)

	w.path = append(w.path, 1)
	w.walk(content, 1, modeScope)
	w.path = w.path[:0]
}

// opaque handles a top-level application/pkcs7-mime entity (signed-data, smime.p7m).
func (w *walker) opaque(e *entity) {
	sig := &Signature{Form: SignatureOpaque, Protocol: lowerString(e.ctype)}
	w.msg.Signature = sig
	sig.CMS = w.decode(e)
	if len(sig.CMS) == 0 {
		w.problem(ErrSignatureMissing, "empty pkcs7-mime body")
		return
	}
	content, err := encapsulatedContent(sig.CMS, w.lim.MaxDepth*4)
	if err != nil {
		w.problem(ErrMalformedSignature, "cannot extract the encapsulated content: %v", err)
		return
	}
	if content == nil {
		return // detached or enveloped: nothing to walk
	}
	sig.Encapsulated = content
	w.path = append(w.path, 1)
	inner := w.readEntity(content, 0, len(content), nil)
	w.walk(inner, 1, modeScope)
	w.path = w.path[:0]
}

// walkPostacert walks the attached original of a breve receipt for its .hash parts.
func (w *walker) walkPostacert(pc []byte) {
	w.prefix = "postacert.eml"
	inner := w.readEntity(pc, 0, len(pc), nil)
	w.walk(inner, 1, modeHash)
	w.prefix = ""
}

func trimSpaceBytes(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 {
		c := b[len(b)-1]
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
