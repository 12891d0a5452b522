package tlog

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// MaxProofLen is the largest number of hashes in a valid proof for any tree size below 2^63.
const MaxProofLen = 2 * 64

// VerifyInclusion checks that proof shows the leaf with hash leafHash at index is included in the
// tree of the given size whose root hash is root. The error wraps [ErrInvalidProof].
func VerifyInclusion(leafHash [32]byte, index, size uint64, p [][]byte, root []byte) error {
	if err := checkProof(p); err != nil {
		return err
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash[:], p, root); err != nil {
		return fmt.Errorf("%w: inclusion of leaf %d in tree of size %d: %v", ErrInvalidProof, index, size, proofErr(err))
	}
	return nil
}

// VerifyConsistency checks that p proves the tree of size from with root rootFrom is a prefix of
// the tree of size to with root rootTo. The error wraps [ErrInvalidProof].
func VerifyConsistency(from, to uint64, p [][]byte, rootFrom, rootTo []byte) error {
	if err := checkProof(p); err != nil {
		return err
	}
	// proof.VerifyConsistency accepts any rootFrom for size 0; the empty tree's root is fixed.
	e := EmptyRoot()
	if from == 0 && string(rootFrom) != string(e[:]) || to == 0 && string(rootTo) != string(e[:]) {
		return fmt.Errorf("%w: root of the empty tree is wrong", ErrInvalidProof)
	}
	if len(rootTo) != 32 {
		return fmt.Errorf("%w: root hash is %d bytes, want 32", ErrInvalidProof, len(rootTo))
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, p, rootFrom, rootTo); err != nil {
		return fmt.Errorf("%w: consistency from size %d to %d: %v", ErrInvalidProof, from, to, proofErr(err))
	}
	return nil
}

// CheckConsistency is the auditor's check between two signed checkpoints of the same log: both
// must verify with vkey, newer must not be smaller than older, and p must be a valid consistency
// proof from older to newer (empty when the sizes are equal, and then the roots must be equal).
// It returns the newer checkpoint, which the auditor may then trust in place of the older one.
func CheckConsistency(older, newer []byte, p [][]byte, vkey string) (log.Checkpoint, error) {
	v, err := NewVerifier(vkey)
	if err != nil {
		return log.Checkpoint{}, err
	}
	o, err := VerifyCheckpointWith(older, v)
	if err != nil {
		return log.Checkpoint{}, fmt.Errorf("older %w", err)
	}
	n, err := VerifyCheckpointWith(newer, v)
	if err != nil {
		return log.Checkpoint{}, fmt.Errorf("newer %w", err)
	}
	if o.Size > n.Size {
		return log.Checkpoint{}, fmt.Errorf("%w: older checkpoint has size %d > newer %d", ErrInvalidProof, o.Size, n.Size)
	}
	if err := VerifyConsistency(o.Size, n.Size, p, o.Hash, n.Hash); err != nil {
		return log.Checkpoint{}, err
	}
	return n, nil
}

func checkProof(p [][]byte) error {
	if len(p) > MaxProofLen {
		return fmt.Errorf("%w: %d hashes, limit %d", ErrInvalidProof, len(p), MaxProofLen)
	}
	for i, h := range p {
		if len(h) != 32 {
			return fmt.Errorf("%w: hash %d is %d bytes, want 32", ErrInvalidProof, i, len(h))
		}
	}
	return nil
}

// proofErr shortens the merkle library's root mismatch message (which prints byte slices).
func proofErr(err error) string {
	var m proof.RootMismatchError
	if errors.As(err, &m) {
		return fmt.Sprintf("computed root %x, expected %x", m.CalculatedRoot, m.ExpectedRoot)
	}
	return err.Error()
}
