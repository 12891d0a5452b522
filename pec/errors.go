package pec

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every problem reported by [Parse] is a *ParseError whose Err is one of these,
// so callers use errors.Is.
var (
	ErrTooLarge         = errors.New("pec: message too large")
	ErrTooDeep          = errors.New("pec: MIME nesting too deep")
	ErrTooManyHeaders   = errors.New("pec: too many header fields")
	ErrTooManyParts     = errors.New("pec: too many MIME parts")
	ErrMalformedHeader  = errors.New("pec: malformed header")
	ErrMalformedMIME    = errors.New("pec: malformed MIME structure")
	ErrTruncated        = errors.New("pec: truncated message")
	ErrEncoding         = errors.New("pec: bad transfer encoding")
	ErrCharset          = errors.New("pec: unknown or bad charset")
	ErrDaticert         = errors.New("pec: malformed daticert.xml")
	ErrDaticertMissing  = errors.New("pec: daticert.xml missing")
	ErrXMLForbidden     = errors.New("pec: forbidden XML construct (DTD or entity)")
	ErrInconsistent     = errors.New("pec: headers and daticert.xml disagree")
	ErrSignatureMissing = errors.New("pec: signature part missing")
	// ErrMalformedSignature: the signature container (for example the CMS of an opaque
	// application/pkcs7-mime message) could not be read far enough to find the signed content.
	ErrMalformedSignature = errors.New("pec: malformed signature container")
	ErrNotPEC             = errors.New("pec: not a PEC message")
)

// ParseError is one problem found while parsing. Part names where it was found ("" for the top
// level, else a dotted MIME path such as "1.2" or a name such as "daticert.xml").
type ParseError struct {
	Err    error  // one of the sentinel errors above
	Part   string // where
	Detail string // human-readable detail, may be empty
}

func (e *ParseError) Error() string {
	s := e.Err.Error()
	if e.Part != "" {
		s += " in " + e.Part
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *ParseError) Unwrap() error { return e.Err }

func newProblem(err error, part, format string, args ...any) *ParseError {
	d := format
	if len(args) > 0 {
		d = fmt.Sprintf(format, args...)
	}
	return &ParseError{Err: err, Part: part, Detail: d}
}
