package pectest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// TestParse checks that package pec classifies every generated message as the generator meant,
// and reads back the cross-references.
func TestParse(t *testing.T) {
	for _, g := range pectest.AllKinds(1) {
		if g.Failure == pectest.FailureTruncated {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			m, err := pec.Parse(g.Bytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Kind != g.Kind {
				t.Fatalf("kind %s, want %s (problems %v)", m.Kind, g.Kind, m.Problems)
			}
			if g.Kind == pec.KindNotPEC {
				return
			}
			if len(m.Problems) > 0 {
				t.Errorf("problems: %v", m.Problems)
			}
			if m.Signature == nil {
				t.Fatal("no signature")
			}
			if m.Headers.XRiferimentoMessageID != g.MsgID {
				t.Errorf("X-Riferimento-Message-ID %q", m.Headers.XRiferimentoMessageID)
			}
			if g.Daticert != nil {
				d := m.Daticert
				if d == nil {
					t.Fatal("no daticert")
				}
				if d.Identificativo != g.ID || d.MsgID != g.MsgID || d.Consegna != g.Daticert.Consegna ||
					d.Ricevuta != g.Daticert.Ricevuta || !d.Data.Equal(g.Time) || d.GestoreEmittente != g.Daticert.GestoreEmittente {
					t.Errorf("daticert %+v", d)
				}
				if e := g.Daticert.Errore; e != "" && d.Errore != e {
					t.Errorf("errore %s, want %s", d.Errore, e)
				}
			}
			if g.ReceiptType != "" && m.ReceiptType() != g.ReceiptType {
				t.Errorf("receipt type %s", m.ReceiptType())
			}
			if (m.Postacert != nil) != (g.Postacert != nil) {
				t.Errorf("postacert present %v", m.Postacert != nil)
			}
			if len(m.HashParts) != len(g.HashParts) {
				t.Errorf("hash parts %v, want %v", m.HashParts, g.HashParts)
			}
			for i := range min(len(m.HashParts), len(g.HashParts)) {
				if m.HashParts[i] != g.HashParts[i] {
					t.Errorf("hash part %v, want %v", m.HashParts[i], g.HashParts[i])
				}
			}
		})
	}
}

// TestSmime checks the verdicts of package smime against the generator's expectations, with the
// CA root as the only anchor and the generated provider index.
func TestSmime(t *testing.T) {
	ca, err := pectest.NewCA(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.NewProvider(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Peer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := smime.LoadIndex(pectest.IndexLDIF(a, b), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, withIndex := range []bool{false, true} {
		cfg := smime.Config{Anchors: smime.NewTrustStore(ca.Root)}
		if withIndex {
			cfg.Index = ix
		}
		v, err := smime.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range pectest.AllKinds(1) {
			if g.Kind == pec.KindNotPEC {
				continue
			}
			m, _ := pec.Parse(g.Bytes, nil)
			vd := v.VerifyMessage(context.Background(), m, nil)
			wantTrusted := g.WantTrusted
			if withIndex && slices.Contains([]pectest.Defect{pectest.DefectWrongSAN, pectest.DefectCA,
				pectest.DefectNoDigitalSignature, pectest.DefectExpired, pectest.DefectNotYetValid,
				pectest.DefectOutsideConstraints, pectest.DefectUntrusted}, g.Defect) {
				wantTrusted = false // also not in the index
			}
			if vd.Valid != g.WantValid || vd.Trusted != wantTrusted {
				t.Errorf("index=%v %s: valid %v trusted %v reasons %v, want valid %v trusted %v",
					withIndex, g.Name, vd.Valid, vd.Trusted, vd.Reasons, g.WantValid, wantTrusted)
			}
			if g.WantValid && !vd.SignedAt.Equal(g.SigningTime) {
				t.Errorf("%s: signed at %v", g.Name, vd.SignedAt)
			}
			want := map[pectest.Defect]string{
				pectest.DefectExpired: smime.ReasonExpired, pectest.DefectNotYetValid: smime.ReasonNotYetValid,
				pectest.DefectUntrusted: smime.ReasonUntrusted, pectest.DefectWrongSAN: smime.ReasonEmailMismatch,
				pectest.DefectOutsideConstraints: smime.ReasonNameConstraints, pectest.DefectCA: smime.ReasonIsCA,
				pectest.DefectNoDigitalSignature: smime.ReasonBadKeyUsage, pectest.DefectForged: smime.ReasonBadSignature,
			}[g.Defect]
			if g.Failure == pectest.FailureTampered {
				want = smime.ReasonDigestMismatch
			}
			if want != "" && !vd.Has(want) {
				t.Errorf("index=%v %s: reasons %v lack %s", withIndex, g.Name, vd.Reasons, want)
			}
		}
	}
	// A signed index verifies against the same root.
	signed, err := ca.SignIndex(pectest.IndexLDIF(a, b), ca.Time)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := smime.LoadIndex(signed, &smime.IndexOptions{Anchors: smime.NewTrustStore(ca.Root), RequireSigned: true}); err != nil {
		t.Errorf("signed index: %v", err)
	}
}

// TestConversationParses runs a whole conversation through the parser and the verifier.
func TestConversationParses(t *testing.T) {
	a, err := pectest.NewProvider(9, &pectest.Options{LF: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Conversation(nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := smime.New(smime.Config{Anchors: smime.NewTrustStore(a.CA.Root)})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range c.Messages {
		m, err := pec.Parse(g.Bytes, nil)
		if err != nil || m.Kind != g.Kind {
			t.Fatalf("%s: kind %s (%v)", g.Name, m.Kind, err)
		}
		if g.Kind == pec.KindNotPEC {
			continue
		}
		if vd := v.VerifyMessage(context.Background(), m, nil); !vd.Valid || !vd.Trusted {
			t.Errorf("%s: %v", g.Name, vd.Reasons)
		}
	}
}
