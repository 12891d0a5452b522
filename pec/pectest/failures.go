package pectest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// Failure is damage done to a message after signing, for negative tests.
type Failure string

const (
	FailureNone Failure = ""
	// FailureTampered changes one byte inside the signed entity (a letter of the text body), so
	// the structure stays intact but the digest no longer matches.
	FailureTampered Failure = "tampered"
	// FailureTruncated cuts the message inside the signature part.
	FailureTruncated Failure = "truncated"
)

// Failures lists every failure other than FailureNone.
var Failures = []Failure{FailureTampered, FailureTruncated}

// Tamper returns a copy of msg with one letter of the signed text changed ("Il giorno" becomes
// "Il Giorno"), so the signed entity no longer matches its digest.
func Tamper(msg []byte) ([]byte, error) {
	i := bytes.Index(msg, []byte("Il giorno"))
	if i < 0 {
		return nil, errors.New("pectest: nothing to tamper with")
	}
	out := slices.Clone(msg)
	out[i+3] = 'G'
	return out, nil
}

// Truncate returns the first two thirds of msg (for a signed message, a cut inside the CMS
// signature or the attached original).
func Truncate(msg []byte) []byte {
	return slices.Clone(msg[:len(msg)*2/3])
}

// Damage applies f to g, returning a new Generated with the damaged bytes and the expectations
// updated (not valid, not trusted).
func Damage(g *Generated, f Failure) (*Generated, error) {
	out := *g
	out.Failure = f
	out.Name = g.Name + "-" + string(f)
	switch f {
	case FailureNone:
		return &out, nil
	case FailureTampered:
		b, err := Tamper(g.Bytes)
		if err != nil {
			return nil, err
		}
		out.Bytes = b
	case FailureTruncated:
		out.Bytes = Truncate(g.Bytes)
	default:
		return nil, fmt.Errorf("%w: unknown failure %q", ErrInvalid, f)
	}
	out.WantValid, out.WantTrusted = false, false
	return &out, nil
}
