package catalog_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// Conversations lists a sender's (or recipient's) originals newest first, those without an
// acceptance last, and pages through them without gaps or repeats.
func TestConversations(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	at := func(h int) func(*catalog.Message) {
		return func(m *catalog.Message) { m.DaticertTime = time.Date(2024, 5, 6, h, 0, 0, 0, rome) }
	}
	mk := func(kind pec.Kind, msgid, consegna string, mod func(*catalog.Message)) catalog.Message {
		m := receipt(kind, msgid, "opec."+msgid, []string{"a@pec.it", "b@pec.it"}, consegna, trusted, "")
		if mod != nil {
			mod(&m)
		}
		return m
	}
	e.store(
		mk(pec.KindAccettazione, "m1@x", "", at(9)),
		mk(pec.KindAccettazione, "m2@x", "", at(11)),
		mk(pec.KindAccettazione, "m3@x", "", at(10)),
		mk(pec.KindAvvenutaConsegna, "m4@x", "a@pec.it", at(12)), // no acceptance archived
		mk(pec.KindAvvenutaConsegna, "m5@x", "a@pec.it", at(12)),
		mk(pec.KindAccettazione, "m6@x", "", func(m *catalog.Message) { at(8)(m); m.Sender = "other@pec.it" }),
	)
	ids := func(cs []catalog.Conversation) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.MsgID)
		}
		return out
	}
	all, err := e.cat.Conversations(ctx, catalog.ConversationQuery{Sender: "SENDER@pec.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"m2@x", "m3@x", "m1@x", "m5@x", "m4@x"}; !slices.Equal(ids(all), want) {
		t.Fatalf("conversations %v, want %v", ids(all), want)
	}
	if !all[0].SentAt.Equal(time.Date(2024, 5, 6, 11, 0, 0, 0, rome)) || !all[4].SentAt.IsZero() {
		t.Errorf("sent times: %+v", all)
	}
	var paged []catalog.Conversation
	var after *catalog.Conversation
	for range 10 {
		page, err := e.cat.Conversations(ctx, catalog.ConversationQuery{Sender: "sender@pec.example.it", Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
		after = &page[len(page)-1]
	}
	if !slices.Equal(ids(paged), ids(all)) {
		t.Errorf("paged %v, want %v", ids(paged), ids(all))
	}
	ranged, err := e.cat.Conversations(ctx, catalog.ConversationQuery{Recipient: "b@pec.it",
		Since: time.Date(2024, 5, 6, 9, 30, 0, 0, rome), Until: time.Date(2024, 5, 6, 11, 0, 0, 0, rome)})
	if err != nil || !slices.Equal(ids(ranged), []string{"m3@x"}) {
		t.Errorf("recipient and range: %v, %v", ids(ranged), err)
	}
	if _, err := e.cat.Conversations(ctx, catalog.ConversationQuery{}); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("no sender or recipient: %v", err)
	}
}

// Search narrows by subject words and by the signature's verdict.
func TestSearchSubjectAndSignature(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	untrusted := trusted
	untrusted.Trusted, untrusted.Reasons = false, []string{"untrusted"}
	invalid := trusted
	invalid.Valid, invalid.Trusted = false, false
	a := receipt(pec.KindAccettazione, "s1@x", "p1", []string{"a@pec.it"}, "", trusted, "")
	a.Subject = "ACCETTAZIONE: Convocazione Assemblea annuale"
	b := receipt(pec.KindAccettazione, "s2@x", "p2", []string{"a@pec.it"}, "", untrusted, "")
	b.Subject = "ACCETTAZIONE: convocazione del consiglio"
	c := receipt(pec.KindAccettazione, "s3@x", "p3", []string{"a@pec.it"}, "", invalid, "")
	c.Subject = "ACCETTAZIONE: Diffida"
	e.store(a, b, c)
	count := func(q catalog.Query) int {
		t.Helper()
		q.Sender = "sender@pec.example.it"
		ms, err := e.cat.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(ms)
	}
	for name, tc := range map[string]struct {
		q    catalog.Query
		want int
	}{
		"one word":          {catalog.Query{SubjectWords: []string{"CONVOCAZIONE"}}, 2},
		"two words":         {catalog.Query{SubjectWords: []string{"convocazione", "annuale"}}, 1},
		"no such word":      {catalog.Query{SubjectWords: []string{"bilancio"}}, 0},
		"percent is a char": {catalog.Query{SubjectWords: []string{"%"}}, 0},
		"trusted":           {catalog.Query{Signature: catalog.SignatureTrusted}, 1},
		"not trusted":       {catalog.Query{Signature: catalog.SignatureNotTrusted}, 2},
		"not valid":         {catalog.Query{Signature: catalog.SignatureNotValid}, 1},
	} {
		if got := count(tc.q); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}
	if _, err := e.cat.Search(ctx, catalog.Query{Signature: "maybe"}); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("bad signature filter: %v", err)
	}
}
