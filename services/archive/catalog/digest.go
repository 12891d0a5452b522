package catalog

import (
	"fmt"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/record"
	"github.com/pecarchive/pecarchive/tlog"
)

// The normalisation of a record and the digests its leaves carry are package record's, so that
// an offline verifier recomputes them without a database; the catalog writes and reads them.

// Limits applied by [record.Message.Normalize] so that no input can make a row unstorable.
const (
	MaxText      = record.MaxText
	MaxID        = record.MaxID
	MaxList      = record.MaxList
	MaxListEntry = record.MaxListEntry
)

// Digest versions (see package record).
const (
	DigestV1            = record.DigestV1
	DigestV2            = record.DigestV2
	DigestVersion       = record.DigestVersion
	SourceDigestVersion = record.SourceDigestVersion
)

// Why a leaf does not vouch for a catalog row (see [CheckMessageLeaf], [CheckSourceLeaf]).
var (
	ErrNotItsLeaf    = record.ErrNotItsLeaf
	ErrAltered       = record.ErrAltered
	ErrSourceAltered = record.ErrSourceAltered
)

// LeafDigest is what the Extra field of a leaf the catalog writes carries.
type LeafDigest = record.LeafDigest

func clean(s string, max int) string         { return record.Clean(s, max) }
func addr(s string) string                   { return record.Addr(s) }
func normTime(t time.Time) time.Time         { return record.NormTime(t) }
func cleanList(l []string, max int) []string { return record.CleanList(l, max) }
func invalid(err error) error                { return fmt.Errorf("%w: %w", ErrInvalid, err) }

// MsgID normalises a message id for correlation (see [record.MsgID]).
func MsgID(s string) string { return record.MsgID(s) }

// RefMsgID returns the correlation key of a message (see [record.RefMsgID]).
func RefMsgID(kind pec.Kind, messageID, origMsgID, xRiferimento string) string {
	return record.RefMsgID(kind, messageID, origMsgID, xRiferimento)
}

// ParseLeafExtra returns the evidence digest carried by a catalog/v1 leaf's Extra field; the
// error wraps ErrInvalid.
func ParseLeafExtra(extra string) ([32]byte, error) {
	d, err := record.ParseLeafExtra(extra)
	if err != nil {
		return d, invalid(err)
	}
	return d, nil
}

// ParseLeafDigest parses a leaf's Extra field as the catalog writes it; the error wraps
// ErrInvalid.
func ParseLeafDigest(extra string) (LeafDigest, error) {
	d, err := record.ParseLeafDigest(extra)
	if err != nil {
		return d, invalid(err)
	}
	return d, nil
}

// SourceDigest returns the catalog/source/v1 digest of the source src of the message sum.
func SourceDigest(sum [32]byte, src *Source) [32]byte { return record.SourceDigest(sum, src) }

// SourceLeafExtra returns the Extra field of the tlog.KindSource leaf of the source src of the
// message sum.
func SourceLeafExtra(sum [32]byte, src *Source) string { return record.SourceLeafExtra(sum, src) }

// CheckMessageLeaf checks that leaf commits to the messages row m and its first source (see
// [record.CheckMessageLeaf]).
func CheckMessageLeaf(leaf tlog.Leaf, m *Message, first *Source) error {
	return record.CheckMessageLeaf(leaf, m, first)
}

// CheckSourceLeaf checks that leaf commits to the source src of the message sum (see
// [record.CheckSourceLeaf]).
func CheckSourceLeaf(leaf tlog.Leaf, sum [32]byte, src *Source) error {
	return record.CheckSourceLeaf(leaf, sum, src)
}

// DescribeSource names a source for a finding.
func DescribeSource(s *Source) string { return record.DescribeSource(s) }

// ChainSet returns the CertSet of a signer chain (DER, signer first; order kept), identified by
// [record.ChainID].
func ChainSet(certs [][]byte) CertSet {
	return CertSet{SHA256: record.ChainID(certs), Certs: certs}
}

// AnchorSet returns the CertSet of a trust-anchor set: the DER certificates sorted and without
// duplicates, identified as pec/smime's TrustStore.ID is ([record.AnchorSet]). label is
// informational.
func AnchorSet(certs [][]byte, label string) CertSet {
	sorted, id := record.AnchorSet(certs)
	return CertSet{SHA256: id, Label: clean(label, MaxText), Certs: sorted}
}

// Field is record.Field: one evidence field of a messages row, written out for a report.
type Field = record.Field

// DiffFields is record.DiffFields: the fields in which got differs from m.
func DiffFields(m, got *Message, how string, skip ...string) []string {
	return record.DiffFields(m, got, how, skip...)
}
