package pec

import (
	"bytes"
	"errors"
)

// This file extracts the encapsulated content of an opaque signature (application/pkcs7-mime,
// signed-data, smime.p7m) so that Parse can walk it like the first part of a multipart/signed.
// It reads just enough BER (definite and indefinite lengths, constructed OCTET STRINGs) to find
// eContent; it checks nothing cryptographic: that is package smime's job.

var (
	errBER        = errors.New("malformed BER")
	errNotSigned  = errors.New("not a CMS SignedData")
	errBERTooDeep = errors.New("BER nested too deep")
)

var oidSignedData = []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}

type berElem struct {
	class       int
	tag         int
	constructed bool
	content     []byte // the content octets (for indefinite lengths, up to the end-of-contents)
	total       int    // bytes the element takes, header and end-of-contents included
}

// parseBER reads one element at the start of b.
func parseBER(b []byte, depth int) (berElem, error) {
	var e berElem
	if depth <= 0 {
		return e, errBERTooDeep
	}
	if len(b) < 2 {
		return e, errBER
	}
	i := 0
	e.class = int(b[0] >> 6)
	e.constructed = b[0]&0x20 != 0
	e.tag = int(b[0] & 0x1f)
	i++
	if e.tag == 0x1f {
		e.tag = 0
		for n := 0; ; n++ {
			if i >= len(b) || n == 4 {
				return e, errBER
			}
			c := b[i]
			i++
			e.tag = e.tag<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return e, errBER
	}
	l := int(b[i])
	i++
	switch {
	case l < 0x80:
	case l == 0x80:
		if !e.constructed {
			return e, errBER
		}
		// indefinite length: children up to the end-of-contents octets 00 00
		start := i
		for {
			if i+1 < len(b) && b[i] == 0 && b[i+1] == 0 {
				e.content = b[start:i]
				e.total = i + 2
				return e, nil
			}
			c, err := parseBER(b[i:], depth-1)
			if err != nil {
				return e, err
			}
			i += c.total
		}
	default:
		n := l & 0x7f
		if n > 4 || i+n > len(b) {
			return e, errBER
		}
		l = 0
		for ; n > 0; n-- {
			l = l<<8 | int(b[i])
			i++
		}
	}
	if l < 0 || l > len(b)-i {
		return e, errBER
	}
	e.content = b[i : i+l]
	e.total = i + l
	return e, nil
}

// berChildren iterates over the elements of a constructed element's content.
type berChildren struct {
	b     []byte
	depth int
}

func (c *berChildren) next() (berElem, bool, error) {
	if len(c.b) == 0 {
		return berElem{}, false, nil
	}
	e, err := parseBER(c.b, c.depth)
	if err != nil {
		return e, false, err
	}
	c.b = c.b[e.total:]
	return e, true, nil
}

// encapsulatedContent returns the eContent of a CMS ContentInfo holding SignedData (RFC 5652),
// or nil when the content is detached.
func encapsulatedContent(cms []byte, maxDepth int) ([]byte, error) {
	if maxDepth <= 0 {
		maxDepth = 64
	}
	ci, err := parseBER(cms, maxDepth)
	if err != nil {
		return nil, err
	}
	if ci.class != 0 || ci.tag != 16 || !ci.constructed {
		return nil, errNotSigned
	}
	kids := berChildren{ci.content, maxDepth}
	oid, ok, err := kids.next()
	if err != nil || !ok || oid.tag != 6 || !bytes.Equal(oid.content, oidSignedData) {
		return nil, errNotSigned
	}
	explicit, ok, err := kids.next()
	if err != nil || !ok || explicit.class != 2 || explicit.tag != 0 {
		return nil, errNotSigned
	}
	sd, err := parseBER(explicit.content, maxDepth)
	if err != nil || sd.tag != 16 {
		return nil, errNotSigned
	}
	kids = berChildren{sd.content, maxDepth}
	if v, ok, err := kids.next(); err != nil || !ok || v.tag != 2 { // version
		return nil, errNotSigned
	}
	if v, ok, err := kids.next(); err != nil || !ok || v.tag != 17 { // digestAlgorithms
		return nil, errNotSigned
	}
	eci, ok, err := kids.next() // encapContentInfo
	if err != nil || !ok || eci.tag != 16 {
		return nil, errNotSigned
	}
	kids = berChildren{eci.content, maxDepth}
	if v, ok, err := kids.next(); err != nil || !ok || v.tag != 6 { // eContentType
		return nil, errNotSigned
	}
	ec, ok, err := kids.next()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil // detached
	}
	if ec.class != 2 || ec.tag != 0 {
		return nil, errNotSigned
	}
	os, err := parseBER(ec.content, maxDepth)
	if err != nil {
		return nil, err
	}
	return octets(os, maxDepth, nil)
}

// octets returns the value of an OCTET STRING, joining the segments of a constructed one.
func octets(e berElem, depth int, out []byte) ([]byte, error) {
	if e.tag != 4 {
		return nil, errBER
	}
	if !e.constructed {
		if out == nil {
			return e.content[:len(e.content):len(e.content)], nil
		}
		return append(out, e.content...), nil
	}
	if depth <= 0 {
		return nil, errBERTooDeep
	}
	if out == nil {
		out = make([]byte, 0, len(e.content))
	}
	kids := berChildren{e.content, depth}
	for {
		k, ok, err := kids.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return out, nil
		}
		if out, err = octets(k, depth-1, out); err != nil {
			return nil, err
		}
	}
}
