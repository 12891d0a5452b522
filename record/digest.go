package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/tlog"
)

// ErrInvalid reports a leaf Extra field that is not a digest this package writes.
var ErrInvalid = errors.New("record: invalid leaf digest")

// Digest versions: the prefix of a message leaf's Extra field says which fields its digest
// covers (see SCHEMA.md, "Tamper evidence").
const (
	// DigestV1 covers the evidence fields (every field but LeafIndex, ReceivedAt, ContainedIn
	// and BlobVersion); the leaf's own time carries ReceivedAt to the second. Leaves written
	// before catalog/v2.
	DigestV1 = "catalog/v1"
	// DigestV2 carries two digests: the evidence fields with ReceivedAt to the microsecond
	// ([Message.EvidenceDigestV2]), and the message's first source (the place the Store call
	// that archived it named, FirstSeen included; [SourceDigest]). Every further source has a
	// leaf of its own (SourceDigestVersion).
	DigestV2 = "catalog/v2"
	// DigestVersion is DigestV1, the version of [Message.EvidenceDigest] and [Message.LeafExtra].
	DigestVersion = DigestV1
	// SourceDigestVersion prefixes the Extra field of a tlog.KindSource leaf ([SourceLeafExtra]).
	SourceDigestVersion = "catalog/source/v1"
)

// digester writes a canonical, length-prefixed encoding.
type digester struct{ b bytes.Buffer }

func (d *digester) str(s string) {
	var n [binary.MaxVarintLen64]byte
	d.b.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	d.b.WriteString(s)
}

func (d *digester) num(v int64) {
	var n [binary.MaxVarintLen64]byte
	d.b.Write(n[:binary.PutVarint(n[:], v)])
}

func (d *digester) tm(t time.Time) {
	if t.IsZero() {
		d.b.WriteByte(0)
		return
	}
	d.b.WriteByte(1)
	d.num(t.UnixMicro())
	_, off := t.Zone()
	d.num(int64(off))
}

func (d *digester) flag(v bool) {
	if v {
		d.b.WriteByte(1)
	} else {
		d.b.WriteByte(0)
	}
}

func (d *digester) list(l []string) {
	d.num(int64(len(l)))
	for _, s := range l {
		d.str(s)
	}
}

func (d *digester) source(s *Source) {
	n := normSource(s)
	d.str(n.Mailbox)
	d.str(n.Folder)
	d.num(int64(n.UIDValidity))
	d.num(int64(n.UID))
	d.tm(n.InternalDate)
	d.str(n.Path)
	d.b.Write(n.Parent[:])
	d.tm(n.FirstSeen)
}

func (d *digester) sum() [32]byte { return sha256.Sum256(d.b.Bytes()) }

// normSource returns s as message_sources stores it: text cleaned and bounded, times to the
// microsecond in UTC.
func normSource(s *Source) Source {
	n := *s
	n.Mailbox, n.Folder, n.Path = Clean(n.Mailbox, MaxText), Clean(n.Folder, MaxText), Clean(n.Path, MaxText)
	n.InternalDate = NormTime(n.InternalDate).UTC()
	n.FirstSeen = NormTime(n.FirstSeen).UTC()
	return n
}

// EvidenceDigest returns the SHA-256 of a canonical, length-prefixed encoding of m's evidence
// fields (every field except LeafIndex, ReceivedAt, ContainedIn and BlobVersion), after
// [Message.Normalize]: the catalog/v1 digest. It does not modify m.
func (m *Message) EvidenceDigest() [32]byte {
	var d digester
	d.b.WriteString(DigestV1)
	m.evidence(&d)
	return d.sum()
}

// EvidenceDigestV2 returns the row digest of a catalog/v2 leaf: the catalog/v1 fields and
// ReceivedAt to the microsecond. It does not modify m.
func (m *Message) EvidenceDigestV2() [32]byte {
	var d digester
	d.b.WriteString(DigestV2)
	c := m.evidence(&d)
	d.tm(c.ReceivedAt.UTC())
	return d.sum()
}

// evidence writes the catalog/v1 fields of m, normalised, and returns the normalised copy.
func (m *Message) evidence(d *digester) *Message {
	c := *m
	c.Normalize()
	d.b.Write(c.SHA256[:])
	d.num(c.Size)
	d.str(string(c.Kind))
	d.str(c.MessageID)
	d.str(c.PECID)
	d.str(c.OrigMsgID)
	d.str(c.XRiferimento)
	d.str(c.RefMsgID)
	d.str(c.Sender)
	d.str(c.From)
	d.list(c.Recipients)
	d.list(c.RecipientTypes)
	d.str(c.Subject)
	d.str(c.Provider)
	d.tm(c.DaticertTime)
	d.tm(c.HeaderDate.UTC())
	d.str(string(c.ReceiptType))
	d.str(string(c.Errore))
	d.str(c.ErroreEsteso)
	d.str(c.Consegna)
	d.flag(c.Verdict.Present)
	d.flag(c.Verdict.Valid)
	d.flag(c.Verdict.Trusted)
	d.str(c.Verdict.Digest)
	d.str(c.Verdict.Signer)
	d.str(c.Verdict.SignerEmail)
	d.str(c.Verdict.Provider)
	d.tm(c.Verdict.SignedAt.UTC())
	d.tm(c.Verdict.VerifiedAt.UTC())
	d.list(c.Verdict.Reasons)
	d.list(c.Verdict.Details)
	d.list(c.Problems)
	d.b.Write(c.ChainSHA256[:])
	d.b.Write(c.AnchorsSHA256[:])
	d.b.Write(c.PostacertSHA256[:])
	return &c
}

// LeafExtra returns the Extra field of a catalog/v1 message leaf: "catalog/v1 " and the hex
// [Message.EvidenceDigest]. The archive writes catalog/v2 leaves ([Message.LeafExtraV2]).
func (m *Message) LeafExtra() string {
	d := m.EvidenceDigest()
	return DigestV1 + " " + hex.EncodeToString(d[:])
}

// LeafExtraV2 returns the Extra field of the message's log leaf as the archive writes it:
// "catalog/v2 ", the hex [Message.EvidenceDigestV2], a space and the hex [SourceDigest] of its
// first source.
func (m *Message) LeafExtraV2(first *Source) string {
	d := m.EvidenceDigestV2()
	f := SourceDigest(m.SHA256, first)
	return DigestV2 + " " + hex.EncodeToString(d[:]) + " " + hex.EncodeToString(f[:])
}

// ParseLeafExtra returns the evidence digest carried by a catalog/v1 leaf's Extra field.
func ParseLeafExtra(extra string) ([32]byte, error) {
	d, err := ParseLeafDigest(extra)
	if err == nil && d.Version != DigestV1 {
		err = fmt.Errorf("%w: leaf extra %.80q is not a %s digest", ErrInvalid, extra, DigestV1)
	}
	return d.Row, err
}

// LeafDigest is what the Extra field of a leaf the catalog writes carries.
type LeafDigest struct {
	Version string   // DigestV1, DigestV2 or SourceDigestVersion
	Row     [32]byte // DigestV1, DigestV2: the messages row's digest
	Source  [32]byte // DigestV2: the first source's; SourceDigestVersion: the source's
}

// ParseLeafDigest parses a leaf's Extra field as the catalog writes it.
func ParseLeafDigest(extra string) (LeafDigest, error) {
	f := strings.Split(extra, " ")
	d := LeafDigest{Version: f[0]}
	var dst []*[32]byte
	switch d.Version {
	case DigestV1:
		dst = []*[32]byte{&d.Row}
	case DigestV2:
		dst = []*[32]byte{&d.Row, &d.Source}
	case SourceDigestVersion:
		dst = []*[32]byte{&d.Source}
	}
	if dst == nil || len(f) != 1+len(dst) {
		return LeafDigest{}, fmt.Errorf("%w: leaf extra %.80q is not a catalog digest", ErrInvalid, extra)
	}
	for i, h := range f[1:] {
		if len(h) != 64 {
			return LeafDigest{}, fmt.Errorf("%w: leaf extra %.80q is not a catalog digest", ErrInvalid, extra)
		}
		if _, err := hex.Decode(dst[i][:], []byte(h)); err != nil || hex.EncodeToString(dst[i][:]) != h {
			return LeafDigest{}, fmt.Errorf("%w: leaf extra %.80q: not lower-case hex", ErrInvalid, extra)
		}
	}
	return d, nil
}

// SourceDigest returns the catalog/source/v1 digest of the source src of the message sum, as
// message_sources stores it (FirstSeen included).
func SourceDigest(sum [32]byte, src *Source) [32]byte {
	var d digester
	d.b.WriteString(SourceDigestVersion)
	d.b.Write(sum[:])
	d.source(src)
	return d.sum()
}

// SourceLeafExtra returns the Extra field of the tlog.KindSource leaf of the source src of the
// message sum: "catalog/source/v1 " and the hex [SourceDigest].
func SourceLeafExtra(sum [32]byte, src *Source) string {
	d := SourceDigest(sum, src)
	return SourceDigestVersion + " " + hex.EncodeToString(d[:])
}

// Why a leaf does not vouch for a catalog row (see [CheckMessageLeaf], [CheckSourceLeaf]).
var (
	// ErrNotItsLeaf: the leaf is of another kind, for another message, or carries no catalog
	// digest.
	ErrNotItsLeaf = errors.New("record: the leaf is not the row's")
	// ErrAltered: the leaf is the row's, but the row differs from what it commits to.
	ErrAltered = errors.New("record: the row differs from what its leaf commits to")
	// ErrSourceAltered: the message's leaf is the row's, but the first source it commits to is
	// missing or differs.
	ErrSourceAltered = errors.New("record: the message's first source differs from what its leaf commits to")
)

// CheckMessageLeaf checks that leaf commits to the messages row m, under the leaf's digest
// version: its kind and message, its time (ReceivedAt to the second) and digests (catalog/v1:
// the evidence fields; catalog/v2: those with ReceivedAt to the microsecond, and first, the
// message's first source, nil when it has none). The error wraps ErrNotItsLeaf, ErrAltered or
// ErrSourceAltered and says what differs.
func CheckMessageLeaf(leaf tlog.Leaf, m *Message, first *Source) error {
	switch {
	case leaf.Kind != tlog.KindMessage:
		return fmt.Errorf("%w: it is a %q leaf", ErrNotItsLeaf, leaf.Kind)
	case leaf.SHA256 != m.SHA256:
		return fmt.Errorf("%w: it is for message %x", ErrNotItsLeaf, leaf.SHA256)
	}
	d, err := ParseLeafDigest(leaf.Extra)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrNotItsLeaf, err)
	case !leaf.Time.Equal(NormTime(m.ReceivedAt).Truncate(time.Second)):
		return fmt.Errorf("%w: received_at %s, the leaf says %s", ErrAltered,
			m.ReceivedAt.UTC().Format(time.RFC3339Nano), leaf.Time.Format(time.RFC3339))
	case d.Version == DigestV1:
		if d.Row != m.EvidenceDigest() {
			return fmt.Errorf("%w: the row's evidence fields differ from the %s digest", ErrAltered, d.Version)
		}
	case d.Version == DigestV2:
		if d.Row != m.EvidenceDigestV2() {
			return fmt.Errorf("%w: the row's evidence fields or received_at (to the microsecond) differ from the %s digest", ErrAltered, d.Version)
		}
		if first == nil {
			return fmt.Errorf("%w: the message has no first source, which its %s leaf covers", ErrSourceAltered, d.Version)
		}
		if d.Source != SourceDigest(m.SHA256, first) {
			return fmt.Errorf("%w: %s", ErrSourceAltered, DescribeSource(first))
		}
	default:
		return fmt.Errorf("%w: a %s digest on a message leaf", ErrNotItsLeaf, d.Version)
	}
	return nil
}

// CheckSourceLeaf checks that leaf commits to the source src of the message sum (a
// message_sources row with a leaf of its own). The error wraps ErrNotItsLeaf or ErrAltered.
func CheckSourceLeaf(leaf tlog.Leaf, sum [32]byte, src *Source) error {
	switch {
	case leaf.Kind != tlog.KindSource:
		return fmt.Errorf("%w: it is a %q leaf", ErrNotItsLeaf, leaf.Kind)
	case leaf.SHA256 != sum:
		return fmt.Errorf("%w: it is for message %x", ErrNotItsLeaf, leaf.SHA256)
	}
	d, err := ParseLeafDigest(leaf.Extra)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", ErrNotItsLeaf, err)
	case d.Version != SourceDigestVersion:
		return fmt.Errorf("%w: a %s digest on a source leaf", ErrNotItsLeaf, d.Version)
	case d.Source != SourceDigest(sum, src) || !leaf.Time.Equal(NormTime(src.FirstSeen).Truncate(time.Second)):
		return fmt.Errorf("%w: %s differs from its %s digest", ErrAltered, DescribeSource(src), d.Version)
	}
	return nil
}

// DescribeSource names a source for a finding.
func DescribeSource(s *Source) string {
	var where string
	switch {
	case s.Mailbox != "" || s.Folder != "":
		where = fmt.Sprintf("mailbox %q folder %q UIDVALIDITY %d UID %d", s.Mailbox, s.Folder, s.UIDValidity, s.UID)
	case s.Parent != ([32]byte{}):
		where = fmt.Sprintf("%q in %x", s.Path, s.Parent[:8])
	default:
		where = fmt.Sprintf("path %q", s.Path)
	}
	return "source " + where + " first seen " + s.FirstSeen.UTC().Format(time.RFC3339Nano)
}

// ChainID returns the identifier of a signer chain (DER, signer first, order kept): the SHA-256
// of the concatenated DER (DER is self-delimiting, so the concatenation is unambiguous).
func ChainID(certs [][]byte) [32]byte {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// AnchorSet returns a trust-anchor set as it is identified: the DER certificates sorted by their
// bytes, duplicates removed, and their [ChainID], which is what pec/smime's TrustStore.ID is (in
// hex), so the same anchors always give the same identifier.
func AnchorSet(certs [][]byte) (sorted [][]byte, id [32]byte) {
	sorted = slices.Clone(certs)
	slices.SortFunc(sorted, bytes.Compare)
	sorted = slices.CompactFunc(sorted, bytes.Equal)
	return sorted, ChainID(sorted)
}
