package verdict_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence/verdict"
	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// describe parses and verifies raw as the archive does (as of its signing time) and describes it.
func describe(t *testing.T, v *smime.Verifier, raw []byte) verdict.Message {
	t.Helper()
	pm, _ := pec.Parse(raw, nil)
	var vd smime.Verdict
	if pm != nil {
		vd = v.VerifyMessage(context.Background(), pm, nil)
	}
	return verdict.FromPEC(sha256.Sum256(raw), pm, &vd)
}

// providers returns a test provider (the sender's), a peer under the same CA (the recipients')
// and a verifier that trusts that CA.
func providers(t *testing.T, seed int64) (prov, peer *pectest.Provider, v *smime.Verifier) {
	t.Helper()
	prov, err := pectest.NewProvider(seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if peer, err = prov.Peer(nil); err != nil {
		t.Fatal(err)
	}
	if v, err = smime.New(smime.Config{Anchors: smime.NewTrustStore(prov.CA.Root)}); err != nil {
		t.Fatal(err)
	}
	return prov, peer, v
}

// Real signed receipts from the test provider, parsed and verified: a good delivery receipt makes
// its recipient DELIVERED; a forged, tampered, rogue-signed or expired-at-signing one never does,
// alone (UNVERIFIED, saying why) or next to a valid acceptance (ACCEPTED_ONLY, saying what was
// disregarded).
func TestRealReceipts(t *testing.T) {
	prov, peer, v := providers(t, 7)
	o, err := prov.Original(&pectest.Original{To: []string{"a@pec.esempio.it", "b@pec.esempio.it"}, Subject: "Notifica",
		MessageID: "notifica-7@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := prov.Original(&pectest.Original{To: []string{"a@pec.esempio.it"}, Subject: "Altra", MessageID: "altra@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	orig := describe(t, v, o.Raw)
	if orig.Kind != pec.KindNotPEC || orig.MsgID != o.MessageID || len(orig.Recipients) != 2 {
		t.Fatalf("original described as %+v", orig)
	}
	acc, err := prov.Acceptance(pectest.Params{Original: o})
	if err != nil {
		t.Fatal(err)
	}
	good, err := peer.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptCompleta})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{}
	for name, d := range map[string]pectest.Defect{"forged": pectest.DefectForged, "rogue-signed": pectest.DefectUntrusted,
		"expired-at-signing": pectest.DefectExpired} {
		p, err := peer.With(func(op *pectest.Options) { op.Defect = d })
		if err != nil {
			t.Fatal(err)
		}
		g, err := p.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptCompleta})
		if err != nil {
			t.Fatal(err)
		}
		bad[name] = g.Bytes
	}
	tampered, err := pectest.Damage(good, pectest.FailureTampered)
	if err != nil {
		t.Fatal(err)
	}
	bad["tampered"] = tampered.Bytes
	truncated, err := pectest.Damage(good, pectest.FailureTruncated)
	if err != nil {
		t.Fatal(err)
	}
	bad["truncated"] = truncated.Bytes
	forOther, err := peer.Delivery(pectest.Params{Original: other, Recipient: "a@pec.esempio.it"})
	if err != nil {
		t.Fatal(err)
	}
	answer := func(receipts ...[]byte) verdict.Recipient {
		t.Helper()
		var ms []verdict.Message
		for _, r := range receipts {
			ms = append(ms, describe(t, v, r))
		}
		res := verdict.Decide(verdict.Original{MsgID: orig.MsgID, Recipients: orig.Recipients}, ms)
		for _, r := range res.Recipients {
			if r.Address == "a@pec.esempio.it" {
				return r
			}
		}
		t.Fatal("no answer for a@pec.esempio.it")
		return verdict.Recipient{}
	}

	if r := answer(acc.Bytes, good.Bytes); r.Verdict != verdict.Delivered || r.Deciding != 1 {
		t.Fatalf("good delivery receipt: %+v", r)
	}
	if r := answer(acc.Bytes, forOther.Bytes); r.Verdict != verdict.AcceptedOnly {
		t.Errorf("a delivery receipt of another message: %+v", r)
	}
	wantReason := map[string]string{"forged": smime.ReasonBadSignature, "rogue-signed": smime.ReasonUntrusted,
		"expired-at-signing": smime.ReasonExpired, "tampered": smime.ReasonDigestMismatch, "truncated": ""}
	for name, raw := range bad {
		d := describe(t, v, raw)
		if verdict.Counts(&d) {
			t.Errorf("%s: counts (valid %v trusted %v reasons %v)", name, d.Valid, d.Trusted, d.Reasons)
		}
		alone := answer(raw)
		if alone.Verdict == verdict.Delivered {
			t.Errorf("%s alone: DELIVERED", name)
		}
		if d.Kind == pec.KindAvvenutaConsegna && alone.Verdict != verdict.Unverified {
			t.Errorf("%s alone: %s, want UNVERIFIED", name, alone.Verdict)
		}
		withAcc := answer(acc.Bytes, raw)
		if withAcc.Verdict != verdict.AcceptedOnly {
			t.Errorf("%s after a valid acceptance: %s, want ACCEPTED_ONLY", name, withAcc.Verdict)
		}
		if w := wantReason[name]; w != "" && (!strings.Contains(alone.ExplanationEN, w) || !strings.Contains(withAcc.ExplanationEN, w)) {
			t.Errorf("%s: the explanations do not say %q: %q / %q", name, w, alone.ExplanationEN, withAcc.ExplanationEN)
		}
		t.Logf("%s: %s: %s", name, withAcc.Verdict, withAcc.ExplanationEN)
	}
	// The non-delivery for b, and a good delivery next to the bad ones: the good one decides.
	nd, err := peer.NonDelivery(pectest.Params{Original: o, Recipient: "b@pec.esempio.it"})
	if err != nil {
		t.Fatal(err)
	}
	all := [][]byte{acc.Bytes, bad["forged"], bad["tampered"], good.Bytes, nd.Bytes}
	if r := answer(all...); r.Verdict != verdict.Delivered || r.Deciding != 3 || len(r.Failed) != 2 {
		t.Errorf("good among bad: %+v", r)
	}
}

// The real samples: the Aruba envelope of 2023 is the message asked about; the anonymised
// receipts (their signatures cut) never make anyone DELIVERED.
func TestSamples(t *testing.T) {
	env := samples.Read(t, "real/aruba-busta-trasporto-2023-08-18.eml")
	v, err := smime.New(smime.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := describe(t, v, env)
	if e.Kind != pec.KindPostaCertificata || !verdict.Counts(&e) || e.MsgID == "" || len(e.Recipients) == 0 {
		t.Fatalf("envelope: %+v", e)
	}
	// The envelope is the original's stand-in: its destinatari are the recipients, and it is no
	// receipt, so alone they are pending.
	res := verdict.Decide(verdict.Original{MsgID: e.MsgID, Recipients: e.Recipients}, []verdict.Message{e})
	for _, r := range res.Recipients {
		if r.Verdict != verdict.Pending {
			t.Errorf("%s: %s with the envelope only", r.Address, r.Verdict)
		}
	}
	paths, _ := filepath.Glob(filepath.Join(samples.Dir(), "anonymised", "*.eml"))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := describe(t, v, raw)
		if verdict.Counts(&m) {
			t.Errorf("%s: an anonymised sample counts", p)
		}
		res := verdict.Decide(verdict.Original{MsgID: m.MsgID, Recipients: m.Recipients}, []verdict.Message{m})
		for _, r := range res.Recipients {
			if r.Verdict == verdict.Delivered || r.Verdict == verdict.NotDelivered || r.Verdict == verdict.AcceptedOnly {
				t.Errorf("%s: %s for %s from a receipt whose signature fails", p, r.Verdict, r.Address)
			}
			t.Logf("%s: %s %s: %s", filepath.Base(p), r.Address, r.Verdict, r.ExplanationEN)
		}
	}
}

// Signatures are judged as of their signing time, bounded by when the archive received them:
// a receipt signed while its certificate was valid still counts once the certificate expires; one
// signed after its certificate expired does not, unless the archive received it while the
// certificate was valid (its signing time is then a lie about a later time: it is verified as of
// its receipt, and the explanation says so).
func TestSigningTime(t *testing.T) {
	prov, peer, v := providers(t, 8)
	o, err := prov.Original(&pectest.Original{To: []string{"a@pec.esempio.it"}, Subject: "Scadenza", MessageID: "scadenza@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	expiry := peer.Signer.Cert.NotAfter
	day := 24 * time.Hour
	for _, tc := range []struct {
		name               string
		signed, received   time.Time
		want               verdict.Verdict
		reason, word, note string
	}{
		{name: "signed while valid, received while valid", signed: expiry.Add(-2 * day), received: expiry.Add(-2 * day),
			want: verdict.Delivered},
		{name: "signed while valid, checked after the certificate expired", signed: expiry.Add(-2 * day), received: expiry.Add(300 * day),
			want: verdict.Delivered},
		{name: "signed after the certificate expired", signed: expiry.Add(2 * day), received: expiry.Add(2 * day),
			want: verdict.Unverified, reason: smime.ReasonExpired, word: "had expired at the signing time (expired)"},
		{name: "signed after the certificate expired, received while valid", signed: expiry.Add(2 * day), received: expiry.Add(-day),
			want: verdict.Delivered, reason: smime.ReasonSignedAfterReceipt, note: "verified as of its receipt (signed-after-receipt)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := peer.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", At: tc.signed, SigningTime: tc.signed})
			if err != nil {
				t.Fatal(err)
			}
			pm, err := pec.Parse(g.Bytes, nil)
			if err != nil {
				t.Fatal(err)
			}
			vd := v.VerifyMessage(context.Background(), pm, &smime.VerifyOptions{ReceivedAt: tc.received})
			m := verdict.FromPEC(sha256.Sum256(g.Bytes), pm, &vd)
			if tc.reason != "" && !slices.Contains(m.Reasons, tc.reason) {
				t.Errorf("reasons %v, want %s among them", m.Reasons, tc.reason)
			}
			res := verdict.Decide(verdict.Original{MsgID: o.MessageID, PECID: o.ID, Recipients: o.To}, []verdict.Message{m})
			r := res.Recipients[0]
			if r.Verdict != tc.want || !strings.Contains(r.ExplanationEN, tc.word) || !strings.Contains(r.ExplanationEN, tc.note) {
				t.Errorf("%s: %s, want %s saying %q%q", r.Address, r.ExplanationEN, tc.want, tc.word, tc.note)
			}
			t.Logf("%s: %s", r.Verdict, r.ExplanationEN)
		})
	}
}

// Real signed receipts of two sendings with one Message-ID: each proves only its own sending.
func TestAnotherSending(t *testing.T) {
	prov, _, v := providers(t, 9)
	o, err := prov.Original(&pectest.Original{To: []string{"a@pec.esempio.it"}, Subject: "Copia", MessageID: "copia@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := prov.NonDelivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it"})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := prov.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ID: "opec-altro.1@" + prov.Info.Domain})
	if err != nil {
		t.Fatal(err)
	}
	ms := []verdict.Message{describe(t, v, mine.Bytes), describe(t, v, theirs.Bytes)}
	if ms[0].PECID != o.ID || ms[1].PECID == o.ID {
		t.Fatalf("identificativi %q, %q", ms[0].PECID, ms[1].PECID)
	}
	res := verdict.Decide(verdict.Original{MsgID: o.MessageID, PECID: o.ID, Recipients: o.To}, ms)
	if r := res.Recipients[0]; r.Verdict != verdict.NotDelivered || len(res.Ignored) != 1 || res.Ignored[0].Index != 1 {
		t.Errorf("%s (ignored %v): %s", r.Verdict, res.Ignored, r.ExplanationEN)
	}
	res = verdict.Decide(verdict.Original{MsgID: o.MessageID, PECID: ms[1].PECID, Recipients: o.To}, ms)
	if r := res.Recipients[0]; r.Verdict != verdict.Delivered || len(res.Ignored) != 1 || res.Ignored[0].Index != 0 {
		t.Errorf("%s (ignored %v): %s", r.Verdict, res.Ignored, r.ExplanationEN)
	}
}
