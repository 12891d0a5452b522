package evidence_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
)

func TestRoundTrip(t *testing.T) {
	f := getFixture(t)
	res := verifyBytes(t, f.bundle, f.arch.VKey)
	for _, fl := range res.Failures {
		t.Errorf("failure: %s", fl)
	}
	for _, w := range res.Warnings {
		t.Logf("warning: %s", w)
	}
	if !res.OK || res.KeySource != "given" {
		t.Fatalf("OK=%v key=%s", res.OK, res.KeySource)
	}
	t.Logf("%d messages, %d deliveries, %d bytes", res.Messages, res.Deliveries, len(f.bundle))
	for _, r := range f.delivery.Recipients {
		t.Logf("%s %s", r.Address, r.Verdict)
		if (r.Address == tamperedTo || r.Address == rogueTo) && r.Verdict == evidence.VerdictDelivered {
			t.Errorf("%s is DELIVERED on a receipt that fails verification", r.Address)
		}
	}
	// The two bad receipts are in the bundle, recorded as failing, and the verifier agrees.
	bad := 0
	for _, msg := range f.manifest.Messages {
		if msg.Record.Kind == "avvenuta-consegna" && !msg.Record.Signature.Trusted {
			bad++
		}
	}
	if bad != 2 {
		t.Errorf("%d untrusted delivery receipts in the bundle, want 2", bad)
	}
}

// Every kind of message, damaged and badly signed ones included, and bytes that are not mail at
// all: each is recorded as the archive finds it, and the bundle verifies (the failures are the
// messages', recorded and re-derived, not the bundle's).
func TestEveryKindVerifies(t *testing.T) {
	ca, err := pectest.NewCA(5, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := evidencetest.New(smime.NewTrustStore(ca.Root, ca.Intermediate))
	if err != nil {
		t.Fatal(err)
	}
	at := pectest.DefaultTime.Add(time.Hour)
	kinds := map[string]bool{}
	for _, g := range pectest.AllKinds(5) {
		m := a.Add(t.Context(), g.Bytes, at, [32]byte{})
		kinds[m.Record.Kind] = true
		if m.Record.Signature.Trusted != g.WantTrusted || m.Record.Signature.Valid != g.WantValid {
			t.Errorf("%s: valid %v trusted %v, want %v %v", g.Name, m.Record.Signature.Valid, m.Record.Signature.Trusted, g.WantValid, g.WantTrusted)
		}
	}
	for _, raw := range [][]byte{[]byte("not mail at all\x00\xff"), {}, []byte("Subject: =?utf-8?B?////?=\r\nContent-Type: multipart/signed; boundary=x\r\n\r\n--x\r\n")} {
		a.Add(t.Context(), raw, at, [32]byte{})
	}
	b, err := a.Bundle(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Write(t.Context(), &buf, b, a); err != nil {
		t.Fatal(err)
	}
	res := verifyBytes(t, buf.Bytes(), a.VKey)
	if !res.OK {
		t.Fatalf("%d messages of %d kinds:\n%s", res.Messages, len(kinds), failures(res))
	}
	t.Logf("%d messages of %d kinds verify", res.Messages, len(kinds))
}
