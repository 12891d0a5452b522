package verdict_test

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence/verdict"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

const msgid = "notice-1@pec.ordine.example.it"

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.FixedZone("+0100", 3600))

// rc builds a receipt about msgid, valid and trusted unless changed by opts.
func rc(kind pec.Kind, consegna string, minutes int, opts ...func(*verdict.Message)) verdict.Message {
	m := verdict.Message{
		SHA256: sha256.Sum256(fmt.Appendf(nil, "%s %s %d %d", kind, consegna, minutes, len(opts))),
		Kind:   kind, MsgID: "<" + msgid + ">", Consegna: consegna, Provider: "Gestore di prova",
		Recipients:   []string{"a@pec.it", "B@Pec.it"},
		DaticertTime: t0.Add(time.Duration(minutes) * time.Minute), SignedAt: t0.Add(time.Duration(minutes) * time.Minute),
		Valid: true, Trusted: true, Reasons: []string{smime.ReasonWeakDigestSHA1},
	}
	switch kind {
	case pec.KindAvvenutaConsegna:
		m.ReceiptType = pec.ReceiptCompleta
	case pec.KindErroreConsegna:
		m.Errore, m.ErroreEsteso = pec.ErrNoDest, "5.1.1 - Utente sconosciuto"
	case pec.KindNonAccettazione:
		m.Errore = pec.ErrAltro
	}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func forged(m *verdict.Message) {
	m.Valid, m.Trusted, m.Reasons = false, false, []string{smime.ReasonBadSignature}
}
func rogue(m *verdict.Message) { m.Trusted, m.Reasons = false, []string{smime.ReasonUntrusted} }
func expired(m *verdict.Message) {
	m.Trusted, m.Reasons = false, []string{smime.ReasonExpired}
}
func liar(m *verdict.Message)       { m.Reasons = []string{smime.ReasonExpired} } // says trusted, with a reason against it
func other(m *verdict.Message)      { m.MsgID = "other@pec.ordine.example.it" }
func noConsegna(m *verdict.Message) { m.Consegna = "" }

var orig = verdict.Original{MsgID: msgid, Recipients: []string{"a@pec.it", "b@pec.it"}}

func TestDecide(t *testing.T) {
	acc := rc(pec.KindAccettazione, "", 0)
	for _, tc := range []struct {
		name     string
		orig     verdict.Original
		receipts []verdict.Message
		want     map[string]verdict.Verdict
		deciding map[string]int // index of the deciding receipt
		conflict map[string]int // number of conflicting receipts
		ignored  int
		words    map[string]string // a word the English explanation must hold
	}{
		{name: "nothing", orig: orig,
			want: map[string]verdict.Verdict{"a@pec.it": verdict.Pending, "b@pec.it": verdict.Pending}},
		{name: "accepted only", orig: orig, receipts: []verdict.Message{acc},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.AcceptedOnly, "b@pec.it": verdict.AcceptedOnly},
			deciding: map[string]int{"a@pec.it": 0}},
		{name: "delivered to one, not to the other", orig: orig,
			receipts: []verdict.Message{acc, rc(pec.KindAvvenutaConsegna, "a@pec.it", 5), rc(pec.KindErroreConsegna, "b@pec.it", 6)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Delivered, "b@pec.it": verdict.NotDelivered},
			deciding: map[string]int{"a@pec.it": 1, "b@pec.it": 2},
			words:    map[string]string{"b@pec.it": "no-dest"}},
		{name: "warned, then delivered late", orig: orig,
			receipts: []verdict.Message{acc, rc(pec.KindPreavvisoErroreConsegna, "b@pec.it", 720), rc(pec.KindAvvenutaConsegna, "b@pec.it", 800)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.AcceptedOnly, "b@pec.it": verdict.Delivered},
			deciding: map[string]int{"b@pec.it": 2}},
		{name: "warned", orig: orig, receipts: []verdict.Message{acc, rc(pec.KindPreavvisoErroreConsegna, "b@pec.it", 720)},
			want: map[string]verdict.Verdict{"a@pec.it": verdict.AcceptedOnly, "b@pec.it": verdict.Warned}},
		{name: "not accepted", orig: orig, receipts: []verdict.Message{rc(pec.KindNonAccettazione, "", 0)},
			want: map[string]verdict.Verdict{"a@pec.it": verdict.NotAccepted, "b@pec.it": verdict.NotAccepted}},
		{name: "the earliest of two delivery receipts decides", orig: orig,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "a@pec.it", 9), rc(pec.KindAvvenutaConsegna, "a@pec.it", 3)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Delivered, "b@pec.it": verdict.Pending},
			deciding: map[string]int{"a@pec.it": 1}},
		{name: "forged delivery alone", orig: orig, receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "a@pec.it", 5, forged)},
			want:  map[string]verdict.Verdict{"a@pec.it": verdict.Unverified, "b@pec.it": verdict.Pending},
			words: map[string]string{"a@pec.it": "bad-signature"}},
		{name: "forged delivery after a valid acceptance", orig: orig,
			receipts: []verdict.Message{acc, rc(pec.KindAvvenutaConsegna, "a@pec.it", 5, forged)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.AcceptedOnly, "b@pec.it": verdict.AcceptedOnly},
			words:    map[string]string{"a@pec.it": "disregarded"}},
		{name: "rogue-signed delivery", orig: orig, receipts: []verdict.Message{acc, rc(pec.KindAvvenutaConsegna, "a@pec.it", 5, rogue)},
			want:  map[string]verdict.Verdict{"a@pec.it": verdict.AcceptedOnly, "b@pec.it": verdict.AcceptedOnly},
			words: map[string]string{"a@pec.it": "untrusted"}},
		{name: "expired at signing", orig: orig, receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "a@pec.it", 5, expired)},
			want:  map[string]verdict.Verdict{"a@pec.it": verdict.Unverified, "b@pec.it": verdict.Pending},
			words: map[string]string{"a@pec.it": "expired"}},
		{name: "trusted with a reason against it is not believed", orig: orig,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "a@pec.it", 5, liar)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Unverified, "b@pec.it": verdict.Pending}},
		{name: "a delivery receipt for another recipient", orig: orig,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "c@pec.it", 5)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Pending, "b@pec.it": verdict.Pending, "c@pec.it": verdict.Delivered}},
		{name: "a delivery receipt naming nobody proves nothing", orig: orig,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "", 5, noConsegna)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Pending, "b@pec.it": verdict.Pending}},
		{name: "a delivery receipt about another message", orig: orig,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "a@pec.it", 5, other)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Pending, "b@pec.it": verdict.Pending}, ignored: 1},
		{name: "valid receipts that disagree", orig: orig,
			receipts: []verdict.Message{acc, rc(pec.KindAvvenutaConsegna, "a@pec.it", 5), rc(pec.KindErroreConsegna, "a@pec.it", 6)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Delivered, "b@pec.it": verdict.AcceptedOnly},
			conflict: map[string]int{"a@pec.it": 2},
			words:    map[string]string{"a@pec.it": "contradict"}},
		{name: "accepted and not accepted", orig: orig,
			receipts: []verdict.Message{acc, rc(pec.KindNonAccettazione, "", 1)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.NotAccepted, "b@pec.it": verdict.NotAccepted},
			conflict: map[string]int{"a@pec.it": 2, "b@pec.it": 2}},
		{name: "a forged non-delivery does not contradict", orig: orig,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "a@pec.it", 5), rc(pec.KindErroreConsegna, "a@pec.it", 6, forged)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Delivered, "b@pec.it": verdict.Pending}},
		{name: "no original stored: the receipts name the recipients", orig: verdict.Original{MsgID: msgid},
			receipts: []verdict.Message{acc, rc(pec.KindAvvenutaConsegna, "b@pec.it", 5)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.AcceptedOnly, "b@pec.it": verdict.Delivered}},
		{name: "informative notices decide nothing", orig: orig,
			receipts: []verdict.Message{rc(pec.KindPresaInCarico, "", 1), rc(pec.KindRilevazioneVirus, "", 2)},
			want:     map[string]verdict.Verdict{"a@pec.it": verdict.Pending, "b@pec.it": verdict.Pending}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := verdict.Decide(tc.orig, tc.receipts)
			got := map[string]verdict.Verdict{}
			for _, r := range res.Recipients {
				got[r.Address] = r.Verdict
				if r.ExplanationIT == "" || r.ExplanationEN == "" || !strings.HasSuffix(r.ExplanationEN, ".") ||
					strings.Count(r.ExplanationEN, ". ") > 0 {
					t.Errorf("%s: explanations %q / %q", r.Address, r.ExplanationIT, r.ExplanationEN)
				}
				if !strings.Contains(r.ExplanationEN, r.Address) || !strings.Contains(r.ExplanationIT, r.Address) {
					t.Errorf("%s: the explanation does not name the recipient: %q", r.Address, r.ExplanationEN)
				}
				if d, ok := tc.deciding[r.Address]; ok && r.Deciding != d {
					t.Errorf("%s: deciding receipt %d, want %d", r.Address, r.Deciding, d)
				}
				if r.Deciding >= 0 && !r.At.Equal(tc.receipts[r.Deciding].DaticertTime) {
					t.Errorf("%s: at %v", r.Address, r.At)
				}
				if n := tc.conflict[r.Address]; len(r.Conflicts) != n {
					t.Errorf("%s: conflicts %v, want %d", r.Address, r.Conflicts, n)
				}
				if w, ok := tc.words[r.Address]; ok && !strings.Contains(r.ExplanationEN, w) {
					t.Errorf("%s: %q does not say %q", r.Address, r.ExplanationEN, w)
				}
				t.Logf("%s %s: %s | %s", r.Address, r.Verdict, r.ExplanationEN, r.ExplanationIT)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("verdicts %v, want %v", got, tc.want)
			}
			if len(res.Ignored) != tc.ignored {
				t.Errorf("ignored %v, want %d", res.Ignored, tc.ignored)
			}
		})
	}
}

// The original's recipients come first, in order, then the others sorted; every receipt about a
// recipient is listed under it.
func TestOrderAndListing(t *testing.T) {
	receipts := []verdict.Message{
		rc(pec.KindAccettazione, "", 0),
		rc(pec.KindAvvenutaConsegna, "z@pec.it", 1),
		rc(pec.KindAvvenutaConsegna, "c@pec.it", 2, forged),
		rc(pec.KindAvvenutaConsegna, "b@pec.it", 3),
	}
	res := verdict.Decide(verdict.Original{MsgID: msgid, Recipients: []string{"B@pec.it", "a@pec.it"}}, receipts)
	var order []string
	for _, r := range res.Recipients {
		order = append(order, r.Address)
	}
	if want := []string{"b@pec.it", "a@pec.it", "c@pec.it", "z@pec.it"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	b := res.Recipients[0]
	if !slices.Equal(b.Receipts, []int{0, 3}) || b.Deciding != 3 || len(b.Failed) != 0 {
		t.Errorf("b: %+v", b)
	}
	c := res.Recipients[2]
	if c.Verdict != verdict.Unverified || !slices.Equal(c.Failed, []int{2}) || c.Deciding != -1 {
		t.Errorf("c: %+v", c)
	}
}

func pecID(id string) func(*verdict.Message) { return func(m *verdict.Message) { m.PECID = id } }

// The letter of the rule: what makes a recipient DELIVERED and what never does.
func TestDeliveredToTheLetter(t *testing.T) {
	sending := verdict.Original{MsgID: msgid, PECID: "opec-1@pec.gestore.it", Recipients: []string{"Mario.Rossi@pec.it"}}
	one := func(o verdict.Original, receipts ...verdict.Message) (verdict.Recipient, verdict.Result) {
		t.Helper()
		res := verdict.Decide(o, receipts)
		for _, r := range res.Recipients {
			if r.Address == "mario.rossi@pec.it" {
				return r, res
			}
		}
		t.Fatalf("no answer for mario.rossi@pec.it: %+v", res.Recipients)
		return verdict.Recipient{}, res
	}
	for _, tc := range []struct {
		name     string
		orig     verdict.Original
		receipts []verdict.Message
		want     verdict.Verdict
		ignored  []string
		word     string // the English explanation says it
		wordIT   string // the Italian explanation says it
	}{
		{name: "the recipient named in another case and with spaces", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "  MARIO.Rossi@PEC.IT\t", 5, pecID("opec-1@pec.gestore.it"))},
			want:     verdict.Delivered, wordIT: "Consegnato a mario.rossi@pec.it"},
		{name: "the recipient in angle brackets", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "<mario.rossi@pec.it>", 5, pecID("<opec-1@pec.gestore.it>"))},
			want:     verdict.Delivered},
		{name: "a receipt for another message to the same recipient", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, other)},
			want:     verdict.Pending, ignored: []string{verdict.IgnoredOtherMessage}},
		{name: "a receipt of another sending with the same Message-ID", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-2@pec.altro.it"))},
			want:     verdict.Pending, ignored: []string{verdict.IgnoredOtherSending}},
		{name: "another sending's delivery next to this sending's non-delivery", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-2@pec.altro.it")),
				rc(pec.KindErroreConsegna, "mario.rossi@pec.it", 6, pecID("opec-1@pec.gestore.it"))},
			want: verdict.NotDelivered, ignored: []string{verdict.IgnoredOtherSending}},
		{name: "a forged receipt claiming another sending is still listed, never deciding", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-2@pec.altro.it"), forged)},
			want:     verdict.Unverified, word: "does not match the signer's key (bad-signature)"},
		{name: "the sending unknown: the Message-ID decides", orig: verdict.Original{MsgID: msgid, Recipients: sending.Recipients},
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-2@pec.altro.it"))},
			want:     verdict.Delivered},
		{name: "a delivery receipt whose consegna is empty", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "", 5, pecID("opec-1@pec.gestore.it"),
				func(m *verdict.Message) { m.Recipients = []string{"mario.rossi@pec.it"} })},
			want: verdict.Pending},
		{name: "a sintetica delivery receipt", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-1@pec.gestore.it"),
				func(m *verdict.Message) { m.ReceiptType = pec.ReceiptSintetica })},
			want: verdict.Delivered, word: "delivery receipt (sintetica)"},
		{name: "a breve delivery receipt", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-1@pec.gestore.it"),
				func(m *verdict.Message) { m.ReceiptType = pec.ReceiptBreve })},
			want: verdict.Delivered, wordIT: "ricevuta di avvenuta consegna (breve)"},
		{name: "a delivery receipt of unknown type", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-1@pec.gestore.it"),
				func(m *verdict.Message) { m.ReceiptType = "" })},
			want: verdict.Delivered, word: "delivery receipt from provider"},
		{name: "signed after its receipt: verified as of its receipt, and said", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-1@pec.gestore.it"),
				func(m *verdict.Message) { m.Reasons = []string{smime.ReasonSignedAfterReceipt} })},
			want: verdict.Delivered, word: "verified as of its receipt (signed-after-receipt)", wordIT: "verificata alla data di ricezione"},
		{name: "expired at signing, in words and by its code", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-1@pec.gestore.it"), expired)},
			want:     verdict.Unverified, word: "the certificate had expired at the signing time (expired)", wordIT: "era scaduto alla data della firma (expired)"},
		{name: "a failing receipt's warnings are not given as the reason", orig: sending,
			receipts: []verdict.Message{rc(pec.KindAvvenutaConsegna, "mario.rossi@pec.it", 5, pecID("opec-1@pec.gestore.it"),
				func(m *verdict.Message) {
					m.Trusted, m.Reasons = false, []string{smime.ReasonUntrusted, smime.ReasonWeakDigestSHA1}
				})},
			want: verdict.Unverified, word: "(signature not trusted: the certificate was not issued by a recognised authority (untrusted))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, res := one(tc.orig, tc.receipts...)
			if r.Verdict != tc.want {
				t.Errorf("%s, want %s: %s", r.Verdict, tc.want, r.ExplanationEN)
			}
			var ignored []string
			for _, ig := range res.Ignored {
				ignored = append(ignored, ig.Reason)
			}
			if !slices.Equal(ignored, tc.ignored) {
				t.Errorf("ignored %v, want %v", ignored, tc.ignored)
			}
			if !strings.Contains(r.ExplanationEN, tc.word) || !strings.Contains(r.ExplanationIT, tc.wordIT) {
				t.Errorf("the explanations do not say %q / %q: %q / %q", tc.word, tc.wordIT, r.ExplanationEN, r.ExplanationIT)
			}
			if strings.Contains(r.ExplanationEN, "()") || strings.Contains(r.ExplanationIT, "()") {
				t.Errorf("empty brackets: %q / %q", r.ExplanationEN, r.ExplanationIT)
			}
			t.Logf("%s: %s | %s", r.Verdict, r.ExplanationIT, r.ExplanationEN)
		})
	}
}
