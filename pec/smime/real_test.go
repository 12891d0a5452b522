package smime

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec"
)

const realEnvelope = "real/aruba-busta-trasporto-2023-08-18.eml"

var realSignedAt = time.Date(2023, 8, 18, 15, 37, 13, 0, time.UTC)

// realMessage parses the real Aruba transport envelope (stored with LF line ends).
func realMessage(tb testing.TB) *pec.Message {
	tb.Helper()
	raw := samples.Read(tb, realEnvelope)
	m, err := pec.Parse(raw, nil)
	if err != nil {
		tb.Fatalf("pec.Parse: %v", err)
	}
	if m.Signature == nil || len(m.Signature.CMS) == 0 || len(m.Signature.Content) == 0 {
		tb.Fatalf("real envelope: no signature parsed (problems %v)", m.Problems)
	}
	return m
}

func actalisStore(tb testing.TB) *TrustStore {
	tb.Helper()
	s, err := LoadPEM(samples.Path(tb, "certs/Actalis_Authentication_Root_CA.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func mustVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	v, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestRealEnvelopeAtSigningTime(t *testing.T) {
	m := realMessage(t)
	for _, tc := range []struct {
		name    string
		anchors *TrustStore
		chain   int
	}{
		{"actalis-root", actalisStore(t), 3},
		{"defaults", nil, 2}, // AgID CA1 is itself an anchor
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mustVerifier(t, Config{Anchors: tc.anchors})
			vd := v.VerifyMessage(context.Background(), m, nil)
			if !vd.Present || !vd.Valid || !vd.Trusted {
				t.Fatalf("verdict %+v", vd)
			}
			if vd.Digest != "sha1" || !vd.Has(ReasonWeakDigestSHA1) || len(vd.Reasons) != 1 {
				t.Errorf("digest %q reasons %v", vd.Digest, vd.Reasons)
			}
			if !vd.SignedAt.Equal(realSignedAt) || !vd.VerifiedAt.Equal(realSignedAt) {
				t.Errorf("signed %v verified %v", vd.SignedAt, vd.VerifiedAt)
			}
			if vd.SignerEmail != "posta-certificata@pec.aruba.it" {
				t.Errorf("signer email %q", vd.SignerEmail)
			}
			if want := "CN=Posta Certificata ARUBA PEC,O=Aruba PEC S.p.A.,L=Ponte San Pietro,ST=Bergamo,C=IT"; vd.Signer != want {
				t.Errorf("signer %q", vd.Signer)
			}
			if len(vd.Chain) != tc.chain || vd.Chain[0].Subject.CommonName != "Posta Certificata ARUBA PEC" {
				t.Errorf("chain %d certificates", len(vd.Chain))
			}
			if !v.Anchors().Contains(vd.Chain[len(vd.Chain)-1]) {
				t.Errorf("chain does not end at an anchor")
			}
			if vd.AnchorSetID != v.Anchors().ID() || len(vd.AnchorSetID) != 64 {
				t.Errorf("anchor set id %q", vd.AnchorSetID)
			}
			// Second call: served by the chain cache, same verdict.
			vd2 := v.VerifyMessage(context.Background(), m, nil)
			if !vd2.Trusted || len(vd2.Chain) != len(vd.Chain) {
				t.Errorf("cached verdict %+v", vd2)
			}
		})
	}
}

func TestRealEnvelopeToday(t *testing.T) {
	m := realMessage(t)
	v := mustVerifier(t, Config{})
	vd := v.VerifyMessage(context.Background(), m, &VerifyOptions{At: time.Now()})
	if !vd.Valid || vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	if !vd.Has(ReasonExpired) {
		t.Fatalf("reasons %v, want %q", vd.Reasons, ReasonExpired)
	}
	for _, r := range vd.Reasons {
		if r != ReasonExpired && !IsWarning(r) {
			t.Errorf("unexpected reason %q", r)
		}
	}
	if len(vd.Chain) == 0 {
		t.Errorf("no chain kept on failure")
	}
}

func TestRealEnvelopeTampered(t *testing.T) {
	raw := samples.Read(t, realEnvelope)
	v := mustVerifier(t, Config{})
	// One byte of the signed text (inside the signed entity) changed.
	i := bytes.Index(raw, []byte("Il messaggio originale"))
	bad := bytes.Clone(raw)
	bad[i+3] = 'M'
	m, err := pec.Parse(bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	vd := v.VerifyMessage(context.Background(), m, nil)
	if !vd.Present || vd.Valid || vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	wantReasons(t, vd, ReasonDigestMismatch, ReasonWeakDigestSHA1)

	// The signature value altered: the digest still matches, the signature does not.
	m = realMessage(t)
	sig := *m.Signature
	sig.CMS = bytes.Clone(sig.CMS)
	sig.CMS[len(sig.CMS)-10] ^= 0x01
	vd = v.Verify(context.Background(), &sig, m.Headers.From, nil)
	wantReasons(t, vd, ReasonBadSignature, ReasonWeakDigestSHA1)

	// Truncated CMS.
	sig.CMS = m.Signature.CMS[:len(m.Signature.CMS)-300]
	vd = v.Verify(context.Background(), &sig, m.Headers.From, nil)
	wantReasons(t, vd, ReasonMalformedCMS)
}

func TestRealEnvelopeCRLF(t *testing.T) {
	raw := samples.Read(t, realEnvelope)
	crlf := bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
	m, err := pec.Parse(crlf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m.Signature.Content, []byte("\r\n")) {
		t.Fatal("signed entity not in CRLF form")
	}
	vd := mustVerifier(t, Config{}).VerifyMessage(context.Background(), m, nil)
	if !vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	wantReasons(t, vd, ReasonWeakDigestSHA1)
}

func TestRealEnvelopeReceivedAt(t *testing.T) {
	m := realMessage(t)
	v := mustVerifier(t, Config{})
	// Received two days before the claimed signing time: suspicious, validated at receipt.
	recv := realSignedAt.Add(-48 * time.Hour)
	vd := v.VerifyMessage(context.Background(), m, &VerifyOptions{ReceivedAt: recv})
	wantReasons(t, vd, ReasonSignedAfterReceipt, ReasonWeakDigestSHA1)
	if !vd.Trusted || !vd.VerifiedAt.Equal(recv) {
		t.Errorf("verdict %+v", vd)
	}
	// Received seconds later (Received: headers say 17:37:09 +0200, signed 15:37:13Z).
	vd = v.VerifyMessage(context.Background(), m, &VerifyOptions{ReceivedAt: time.Date(2023, 8, 18, 15, 37, 9, 0, time.UTC)})
	wantReasons(t, vd, ReasonWeakDigestSHA1)
}
