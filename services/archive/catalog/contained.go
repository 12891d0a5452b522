package catalog

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/pecarchive/pecarchive/pec"
)

// ErrNotContained: a message said to be carried inside another ([Message.ContainedIn]) could not
// be extracted from it, or the extracted bytes do not hash to the message's SHA-256.
var ErrNotContained = errors.New("catalog: message not found in the message said to contain it")

// ExtractContained returns the bytes of the message sum carried inside parent, the exact bytes
// of the message [Message.ContainedIn] names: today the postacert.eml of a complete delivery
// receipt, re-extracted with pec.Parse (opts may be nil; its MaxSize is raised to len(parent)).
// The result is re-hashed: an error wrapping ErrNotContained says parent does not carry sum.
func ExtractContained(parent []byte, sum [32]byte, opts *pec.Options) ([]byte, error) {
	var o pec.Options
	if opts != nil {
		o = *opts
	}
	if o.Limits.MaxSize < len(parent) {
		o.Limits.MaxSize = len(parent)
	}
	pm, err := pec.Parse(parent, &o)
	if err != nil {
		return nil, fmt.Errorf("%w: %x: parse parent: %v", ErrNotContained, sum[:8], err)
	}
	if len(pm.Postacert) == 0 {
		return nil, fmt.Errorf("%w: %x: the parent carries no postacert.eml", ErrNotContained, sum[:8])
	}
	if got := sha256.Sum256(pm.Postacert); got != sum {
		return nil, fmt.Errorf("%w: %x: the parent's postacert.eml has SHA-256 %x", ErrNotContained, sum[:8], got[:8])
	}
	return pm.Postacert, nil
}
