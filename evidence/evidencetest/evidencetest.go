// Package evidencetest builds evidence bundles for tests without an archive: an in-memory
// transparency log with a throw-away key, messages described and verified as the archive does,
// and the claims about a pectest conversation. For tests only: its verdicts follow a simplified
// rule, and its key and certificates must never be trusted.
package evidencetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/record"
	"github.com/pecarchive/pecarchive/tlog"
)

// Origin is the log origin of every Archive.
const Origin = "pecarchive.test/log"

// Archive is an in-memory stand-in for the archive: messages, their records and a log.
type Archive struct {
	SKey, VKey string
	Anchors    *smime.TrustStore

	verifier *smime.Verifier
	tree     *testonly.Tree
	blobs    map[[32]byte][]byte
	msgs     []evidence.Message
	chains   map[[32]byte][][]byte
}

// New returns an empty archive whose signatures are verified against anchors and whose log is
// signed with a fresh key.
func New(anchors *smime.TrustStore) (*Archive, error) {
	skey, vkey, err := tlog.GenerateKey(Origin)
	if err != nil {
		return nil, err
	}
	v, err := smime.New(smime.Config{Anchors: anchors})
	if err != nil {
		return nil, err
	}
	a := &Archive{SKey: skey, VKey: vkey, Anchors: anchors, verifier: v, tree: testonly.New(rfc6962.DefaultHasher),
		blobs: map[[32]byte][]byte{}, chains: map[[32]byte][][]byte{}}
	// Leaves other than messages before and between them, so indices and proofs are not trivial.
	a.tree.AppendData([]byte("a leaf before the messages"))
	return a, nil
}

// Add archives raw as received at receivedAt: parsed, verified as of its signing time, recorded
// and logged. containedIn is the SHA-256 of the message carrying it (zero for none). Adding the
// same bytes twice is a no-op.
func (a *Archive) Add(ctx context.Context, raw []byte, receivedAt time.Time, containedIn [32]byte) evidence.Message {
	sum := sha256.Sum256(raw)
	for _, m := range a.msgs {
		if m.SHA256 == hex.EncodeToString(sum[:]) {
			return m
		}
	}
	receivedAt = receivedAt.UTC().Truncate(time.Microsecond)
	pm, perr := pec.Parse(raw, nil)
	if pm == nil {
		pm = &pec.Message{Kind: pec.KindNotPEC}
	}
	vd := a.verifier.VerifyMessage(ctx, pm, &smime.VerifyOptions{ReceivedAt: receivedAt})
	rec := record.Describe(sum, int64(len(raw)), pm, perr, &vd)
	rec.ReceivedAt = receivedAt
	rec.Normalize()
	if vd.Present && len(vd.Chain) > 0 {
		a.chains[evidence.ChainID(vd.ChainDER())] = vd.ChainDER()
	}
	// As the archive logs it: a catalog/v2 leaf over the record and its first source.
	first := record.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "INBOX", UIDValidity: 1,
		UID: uint32(len(a.msgs) + 1), FirstSeen: receivedAt}
	leaf := tlog.Leaf{Kind: tlog.KindMessage, SHA256: sum, Time: receivedAt, Extra: rec.LeafExtraV2(&first)}
	m := evidence.Message{
		SHA256:      hex.EncodeToString(sum[:]),
		Size:        int64(len(raw)),
		Leaf:        evidence.Leaf{Index: a.tree.Size(), Time: receivedAt.Unix(), Extra: leaf.Extra},
		Record:      evidence.RecordOf(&rec),
		FirstSource: evidence.SourceOf(&first),
	}
	if containedIn != ([32]byte{}) {
		m.ContainedIn = hex.EncodeToString(containedIn[:])
	}
	a.tree.AppendData(leaf.Marshal())
	a.tree.AppendData([]byte(fmt.Sprintf("an access leaf after message %d", len(a.msgs))))
	a.blobs[sum] = raw
	a.msgs = append(a.msgs, m)
	return m
}

// OpenMessage implements evidence.Content.
func (a *Archive) OpenMessage(_ context.Context, sum [32]byte) (io.ReadCloser, error) {
	b, ok := a.blobs[sum]
	if !ok {
		return nil, fmt.Errorf("evidencetest: no message %x", sum[:8])
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Checkpoint returns the signed checkpoint of the log as it is now.
func (a *Archive) Checkpoint() []byte {
	s, err := tlog.NewSigner(a.SKey)
	if err != nil {
		panic(err)
	}
	signed, err := tlog.SignCheckpoint(s, log.Checkpoint{Origin: Origin, Size: a.tree.Size(), Hash: a.tree.Hash()})
	if err != nil {
		panic(err)
	}
	return signed
}

// Grow appends n leaves that are not messages (as the archive's access records are).
func (a *Archive) Grow(n int) {
	for i := range n {
		a.tree.AppendData([]byte(fmt.Sprintf("growth leaf %d at %d", i, a.tree.Size())))
	}
}

// Bundle returns the bundle of the given messages (all when sums is empty) and deliveries, with
// proofs against a checkpoint of the log as it is now, citing the earlier checkpoints given.
func (a *Archive) Bundle(deliveries []evidence.Delivery, earlier [][]byte, sums ...string) (*evidence.Bundle, error) {
	cp := a.Checkpoint()
	size := a.tree.Size()
	b := &evidence.Bundle{
		CreatedAt:  time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC),
		ExportedBy: "auditor@ordine.example.it",
		Selectors:  []evidence.Selector{{MsgID: "test"}},
		Checkpoint: cp,
		LogKey:     a.VKey,
		Deliveries: deliveries,
		AnchorSets: []evidence.Certs{{DER: derOf(a.Anchors), Label: "test anchors"}},
	}
	for _, e := range earlier {
		ecp, err := tlog.ParseCheckpoint(e)
		if err != nil {
			return nil, err
		}
		p, err := a.tree.ConsistencyProof(ecp.Size, size)
		if err != nil {
			return nil, err
		}
		b.Earlier = append(b.Earlier, evidence.Cited{Checkpoint: e, Proof: p})
	}
	chains := map[string]bool{}
	for _, m := range a.msgs {
		if len(sums) > 0 && !slices.Contains(sums, m.SHA256) {
			continue
		}
		p, err := a.tree.InclusionProof(m.Leaf.Index, size)
		if err != nil {
			return nil, err
		}
		m.InclusionProof = evidence.EncodeHashes(p)
		b.Messages = append(b.Messages, m)
		if c := m.Record.ChainSHA256; c != "" && !chains[c] {
			chains[c] = true
			var id [32]byte
			hex.Decode(id[:], []byte(c))
			b.Chains = append(b.Chains, evidence.Certs{DER: a.chains[id]})
		}
	}
	return b, nil
}

func derOf(s *smime.TrustStore) [][]byte {
	var out [][]byte
	for _, c := range s.Certificates() {
		out = append(out, c.Raw)
	}
	return out
}

// Messages returns the archived messages in order.
func (a *Archive) Messages() []evidence.Message { return slices.Clone(a.msgs) }

// AddConversation archives every message of c (receipts in time order, a complete delivery
// receipt's postacert.eml as a message of its own, as the archive does) and returns the claims
// about its original: one delivery, a verdict per recipient by a simplified rule.
func (a *Archive) AddConversation(ctx context.Context, c *pectest.Conversation) evidence.Delivery {
	var orig evidence.Message
	var all []evidence.Message
	for _, g := range c.Messages {
		at := g.Time
		if at.IsZero() {
			at = c.Original.Date
		}
		received := at.Add(2 * time.Second)
		m := a.Add(ctx, g.Bytes, received, [32]byte{})
		all = append(all, m)
		if g.Name == "original" {
			orig = m
		}
		if g.Kind == pec.KindAvvenutaConsegna && g.ReceiptType == pec.ReceiptCompleta && len(g.Postacert) > 0 {
			pm, _ := pec.Parse(g.Bytes, nil)
			if pm != nil && len(pm.Postacert) > 0 {
				all = append(all, a.Add(ctx, pm.Postacert, received, sha256.Sum256(g.Bytes)))
			}
		}
	}
	return Claims(orig, all)
}

// Claims returns the claim about orig from the records of msgs, by the rule of the query
// service (evidence.DeriveDeliveries, verdict.Conversation): the claim about its one sending.
func Claims(orig evidence.Message, msgs []evidence.Message) evidence.Delivery {
	return evidence.DeriveDeliveries(orig.Record.MessageID, msgs)[0]
}
