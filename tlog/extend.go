package tlog

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// Errors of [Extends] and [CheckAgainst]; use errors.Is.
var (
	// ErrRollback reports a log smaller than a checkpoint of it: it lost leaves that were signed.
	ErrRollback = errors.New("tlog: the log is smaller than a checkpoint of it")
	// ErrFork reports a log that does not extend a checkpoint of it: its tree at the checkpoint's
	// size has another root, or no valid consistency proof leads from the checkpoint to it.
	ErrFork = errors.New("tlog: the log does not extend a checkpoint of it")
)

// MaxVerifierKeys bounds the keys [ParseVerifierKeys] accepts.
const MaxVerifierKeys = 256

// ParseVerifierKeys parses public verifier keys made by [GenerateKey], one per line; blank lines
// and lines starting with '#' are ignored. A log that rotated its signing key is checked with
// all of them: its current key and every earlier one (checkpoints signed before a rotation stay
// signed by the old key). Repeated keys are kept once.
func ParseVerifierKeys(text string) ([]note.Verifier, error) {
	var vs []note.Verifier
	seen := map[string]bool{}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || seen[line] {
			continue
		}
		if len(vs) == MaxVerifierKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrInvalidKey, MaxVerifierKeys)
		}
		v, err := NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		seen[line] = true
		vs = append(vs, v)
	}
	return vs, nil
}

// VerifyCheckpointAny is [VerifyCheckpointWith] for a log with several keys (see
// [ParseVerifierKeys]): signed must carry a valid signature by at least one of vs, and its
// origin must be the name of a key that signed it. Signatures by other keys are ignored.
func VerifyCheckpointAny(signed []byte, vs []note.Verifier) (log.Checkpoint, error) {
	if len(vs) == 0 {
		return log.Checkpoint{}, fmt.Errorf("%w: no key to verify it with", ErrInvalidKey)
	}
	if len(signed) > MaxCheckpointSize {
		return log.Checkpoint{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidCheckpoint, len(signed), MaxCheckpointSize)
	}
	// One verifier per name and key hash: note.VerifierList refuses ambiguous look-ups.
	type id struct {
		name string
		hash uint32
	}
	seen := map[id]bool{}
	var list []note.Verifier
	for _, v := range vs {
		if k := (id{v.Name(), v.KeyHash()}); !seen[k] {
			seen[k] = true
			list = append(list, v)
		}
	}
	n, err := note.Open(signed, note.VerifierList(list...))
	if err != nil {
		var u *note.UnverifiedNoteError
		if errors.As(err, &u) {
			return log.Checkpoint{}, fmt.Errorf("%w: not signed by any of the %d keys given", ErrInvalidCheckpoint, len(list))
		}
		return log.Checkpoint{}, fmt.Errorf("%w: %v", ErrInvalidCheckpoint, err)
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return log.Checkpoint{}, err
	}
	for _, s := range n.Sigs {
		if s.Name == cp.Origin && seen[id{s.Name, s.Hash}] {
			return cp, nil
		}
	}
	return log.Checkpoint{}, fmt.Errorf("%w: origin %q is not the name of a key that signed it", ErrInvalidCheckpoint, cp.Origin)
}

// Tree is a log as a checkpoint is checked against it: its size, its root hash, and the
// consistency proofs it serves.
type Tree struct {
	Size uint64
	Root []byte
	// Consistency returns the proof that the tree of size from (0 < from < Size) is a prefix of
	// this tree. Its error is returned as is by [Extends] (a log that cannot be read is not
	// thereby forked).
	Consistency func(from uint64) ([][]byte, error)
}

// Extends checks that tree extends cp, a checkpoint already verified as the log's (see
// [CheckAgainst]): cp is not larger than tree (else an error wrapping [ErrRollback]), and the
// tree at cp's size has cp's root, shown by equal roots at equal sizes or by a consistency proof
// from cp to tree (else an error wrapping [ErrFork]).
func Extends(cp log.Checkpoint, tree Tree) error {
	if len(tree.Root) != 32 {
		return fmt.Errorf("%w: the tree's root hash is %d bytes, want 32", ErrInvalidProof, len(tree.Root))
	}
	switch {
	case cp.Size > tree.Size:
		return fmt.Errorf("%w: checkpoint of size %d, tree of size %d", ErrRollback, cp.Size, tree.Size)
	case cp.Size == tree.Size:
		if !bytes.Equal(cp.Hash, tree.Root) {
			return fmt.Errorf("%w: the tree of size %d has another root than the checkpoint of that size", ErrFork, cp.Size)
		}
		return nil
	case cp.Size == 0:
		if e := EmptyRoot(); !bytes.Equal(cp.Hash, e[:]) {
			return fmt.Errorf("%w: checkpoint of size 0 with a root that is not the empty tree's", ErrFork)
		}
		return nil
	}
	if tree.Consistency == nil {
		return fmt.Errorf("%w: no consistency proof from size %d to %d", ErrInvalidProof, cp.Size, tree.Size)
	}
	p, err := tree.Consistency(cp.Size)
	if err != nil {
		return err
	}
	if err := VerifyConsistency(cp.Size, tree.Size, p, cp.Hash, tree.Root); err != nil {
		return fmt.Errorf("%w: from the checkpoint of size %d to the tree of size %d: %w", ErrFork, cp.Size, tree.Size, err)
	}
	return nil
}

// CheckAgainst is the check of one signed checkpoint against one log, as the archive makes it
// before signing, its audit makes it for every checkpoint kept on write-once storage or held
// outside (an auditor's or a witness's copy), and an offline verifier makes it with a bundled
// proof: signed must verify with one of vs ([VerifyCheckpointAny]) and tree must extend it
// ([Extends]). It returns the checkpoint. Errors wrap [ErrInvalidCheckpoint] or [ErrInvalidKey]
// (not the log's signature), [ErrRollback], [ErrFork], or come from tree.Consistency.
func CheckAgainst(signed []byte, vs []note.Verifier, tree Tree) (log.Checkpoint, error) {
	cp, err := VerifyCheckpointAny(signed, vs)
	if err != nil {
		return log.Checkpoint{}, err
	}
	if err := Extends(cp, tree); err != nil {
		return cp, err
	}
	return cp, nil
}
