package evidence_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// fixture is one archive holding a conversation (one notice to five recipients: delivered,
// unknown address, late then delivered, and two whose delivery receipts fail verification),
// with an earlier checkpoint.
type fixture struct {
	arch     *evidencetest.Archive
	provider *pectest.Provider
	delivery evidence.Delivery
	earlier  []byte
	bundle   []byte // the written bundle
	manifest *evidence.Manifest
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
	fixtureErr  error
)

// Recipients of the fixture whose delivery receipts fail verification.
var (
	tamperedTo = "anna.verdi@" + pectest.ProviderB.Domain
	rogueTo    = "paolo.neri@" + pectest.ProviderB.Domain
)

func anchorsOf(p *pectest.Provider) *smime.TrustStore {
	return smime.NewTrustStore(p.CA.Root, p.CA.Intermediate)
}

// getFixture builds the shared fixture once (RSA keys take a while to derive).
func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureVal, fixtureErr = newFixture()
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return fixtureVal
}

func newFixture() (*fixture, error) {
	ctx := context.Background()
	p, err := pectest.NewProvider(12, nil)
	if err != nil {
		return nil, err
	}
	c, err := p.Conversation(&pectest.ConversationConfig{
		Original: &pectest.Original{
			Subject: "Convocazione assemblea 2025 <b>&amp; \"ordine\"</b> <script>alert(1)</script>",
			To:      []string{"mario.rossi@" + pectest.ProviderB.Domain},
			Cc: []string{"ufficio@" + pectest.ProviderA.Domain, "luca.bianchi@" + pectest.ProviderB.Domain,
				tamperedTo, rogueTo},
		},
		Outcomes: map[string]pectest.Outcome{
			"luca.bianchi@" + pectest.ProviderB.Domain: {Error: pec.ErrNoDest},
			"ufficio@" + pectest.ProviderA.Domain:      {Late: true},
		},
	})
	if err != nil {
		return nil, err
	}
	// Two delivery receipts fail verification: one tampered with after signing, one signed by a
	// look-alike CA. Neither may make its recipient DELIVERED.
	rogue, err := pectest.NewProvider(12, &pectest.Options{Provider: pectest.ProviderB, Defect: pectest.DefectUntrusted})
	if err != nil {
		return nil, err
	}
	for i, g := range c.Messages {
		if g.Kind != pec.KindAvvenutaConsegna {
			continue
		}
		switch g.Recipient {
		case tamperedTo:
			if c.Messages[i], err = pectest.Damage(g, pectest.FailureTampered); err != nil {
				return nil, err
			}
		case rogueTo:
			if c.Messages[i], err = rogue.Delivery(pectest.Params{Original: c.Original, Recipient: rogueTo, At: g.Time}); err != nil {
				return nil, err
			}
		}
	}
	a, err := evidencetest.New(anchorsOf(p))
	if err != nil {
		return nil, err
	}
	a.Grow(3)
	earlier := a.Checkpoint()
	d := a.AddConversation(ctx, c)
	a.Grow(5)
	b, err := a.Bundle([]evidence.Delivery{d}, [][]byte{earlier})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	m, err := evidence.Write(ctx, &buf, b, a)
	if err != nil {
		return nil, err
	}
	return &fixture{arch: a, provider: p, delivery: d, earlier: earlier, bundle: buf.Bytes(), manifest: m}, nil
}

func verifyBytes(t testing.TB, data []byte, key string) *evidence.Result {
	t.Helper()
	return evidence.VerifyReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), &evidence.VerifyOptions{LogKey: key})
}
