package catalog

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
)

// This file holds derive, the rule by which delivery states follow from delivery events written
// out in Go, and checks the server's derivation (deliveriesSQL) against it on random histories.

// stateOf is the state a trusted receipt of class c establishes; classes are ordered by strength.
var stateOf = map[class]DeliveryState{
	classNone:        StatePending,
	classAcceptance:  StateAccepted,
	classWarning:     StateWarned,
	classNonDelivery: StateNotDelivered,
	classDelivery:    StateDelivered,
}

// better reports whether a is better evidence than b: trusted first, then earlier, then by hash.
func better(a, b *event) bool {
	if a.OK != b.OK {
		return a.OK
	}
	if !a.Time.Equal(b.Time) {
		if a.Time.IsZero() || b.Time.IsZero() {
			return b.Time.IsZero()
		}
		return a.Time.Before(b.Time)
	}
	return bytes.Compare(a.Receipt[:], b.Receipt[:]) < 0
}

// original is a stored original (non-PEC message) of a msgid, or a provider's copy of it.
type original struct {
	SHA256     [32]byte
	Recipients []string
}

// derive computes the deliveries of one msgid from its events and its original (nil if not
// stored). Recipients of the original that no event mentions are pending; with no events at
// all there are no deliveries.
func derive(msgid string, evs []event, orig *original, now time.Time) []Delivery {
	if len(evs) == 0 {
		return nil
	}
	by := map[string][]*event{}
	var order []string
	for i := range evs {
		e := &evs[i]
		if _, ok := by[e.Recipient]; !ok {
			order = append(order, e.Recipient)
		}
		by[e.Recipient] = append(by[e.Recipient], e)
	}
	// PEC id and sender: from the best receipt that has them (trusted first, then earliest).
	sorted := make([]*event, len(evs))
	for i := range evs {
		sorted[i] = &evs[i]
	}
	sort.SliceStable(sorted, func(i, j int) bool { return better(sorted[i], sorted[j]) })
	var pecID, sender string
	for _, e := range sorted {
		if pecID == "" {
			pecID = e.PECID
		}
		if sender == "" {
			sender = e.Sender
		}
	}
	if orig != nil {
		for _, r := range orig.Recipients {
			if _, ok := by[r]; !ok && r != "" {
				by[r] = nil
				order = append(order, r)
			}
		}
	}
	sort.Strings(order)
	out := make([]Delivery, 0, len(order))
	for _, r := range order {
		d := Delivery{MsgID: msgid, Recipient: r, PECID: pecID, Sender: sender, State: StatePending, UpdatedAt: now}
		if orig != nil {
			d.Original = orig.SHA256
		}
		var best [classDelivery + 1]*event
		for _, e := range by[r] {
			c := classOf(e.Kind)
			if c == classNone {
				continue
			}
			if best[c] == nil || better(e, best[c]) {
				best[c] = e
			}
		}
		state := classNone
		for c := classDelivery; c > classNone; c-- {
			if best[c] != nil && best[c].OK {
				state = c
				break
			}
		}
		d.State = stateOf[state]
		if state != classNone {
			d.StateAt = best[state].Time
		}
		if e := best[classAcceptance]; e != nil {
			d.Acceptance = e.Receipt
			d.AcceptedAt = e.Time
		}
		if e := best[classDelivery]; e != nil {
			d.Delivery = e.Receipt
			d.ReceiptType = pec.ReceiptType(e.ReceiptType)
		}
		if e := best[classWarning]; e != nil {
			d.Warning = e.Receipt
			d.ErroreEsteso = e.ErroreEsteso
		}
		if e := best[classNonDelivery]; e != nil {
			d.NonDelivery = e.Receipt
			d.Errore = pec.ErrorCode(e.Errore)
			d.ErroreEsteso = e.ErroreEsteso
		}
		var problems []string
		for c := classDelivery; c > state; c-- {
			if e := best[c]; e != nil && !e.OK {
				problems = append(problems, fmt.Sprintf("%s receipt %s: %s", e.Kind, hex.EncodeToString(e.Receipt[:6]), e.Problem))
			}
		}
		d.Problem = clean(strings.Join(problems, "; "), MaxText)
		out = append(out, d)
	}
	return out
}

// The deliveries the server derives (deliveriesSQL) are those of derive, on random histories of
// one msgid each: events of every class, trusted or not, with equal, earlier, later and unknown
// times, receipts naming several recipients, PEC ids and senders present or not, problems long
// and multi-byte enough that their join must be cut to MaxText, and zero to three originals (the
// original as sent, provider copies, received at the same or different times), arriving in one
// to three commits, so that the server derives some rows again and leaves others as they are.
func TestDeliveriesMatchModel(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PG(t)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	cat := New(pool)
	rng := rand.New(rand.NewPCG(6, 7))
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	t0 := time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)
	kinds := []pec.Kind{pec.KindAccettazione, pec.KindPreavvisoErroreConsegna, pec.KindErroreConsegna,
		pec.KindNonAccettazione, pec.KindAvvenutaConsegna}
	rcpts := []string{"a@pec.example.it", "b@pec.example.it", "c@pec.example.it", "d@pec.example.it"}
	pick := func(l ...string) string { return l[rng.IntN(len(l))] }
	problem := func() string {
		switch rng.IntN(3) {
		case 0:
			return ""
		case 1: // up to MaxText, as verdictProblem cuts it: two of them make a join to cut
			return clean(strings.Repeat("firma non valida è ", 1+rng.IntN(220)), MaxText)
		default:
			return pick("signature not trusted (chain-untrusted)", "not signed", "signature not valid (digest-mismatch)")
		}
	}
	var leaf uint64
	newSum := func() (s [32]byte) {
		for i := range s {
			s[i] = byte(rng.UintN(256))
		}
		return s
	}
	for iter := range 400 {
		msgid := fmt.Sprintf("m%d@client.example.it", iter)
		var msgs []Message
		var evs []event
		type key struct {
			rcpt string
			sum  [32]byte
		}
		seen := map[key]bool{}
		var sums [][32]byte
		for range rng.IntN(9) {
			var e event
			if len(evs) > 0 && rng.IntN(4) == 0 { // the same receipt about another recipient
				e = evs[rng.IntN(len(evs))]
				e.Recipient = rcpts[rng.IntN(3)]
			} else {
				e = event{MsgID: msgid, Recipient: rcpts[rng.IntN(3)], Receipt: newSum(), Kind: kinds[rng.IntN(len(kinds))],
					OK: rng.IntN(2) == 0, PECID: pick("", "opec.1@pec.example.it", "opec.2@pec.example.it"),
					Sender: pick("", "s1@pec.example.it", "s2@pec.example.it"), ReceiptType: pick("", "completa", "sintetica"),
					Errore: pick("", "nessuno", "no-dest"), ErroreEsteso: pick("", "5.1.1 unknown user", "timeout")}
				if rng.IntN(4) > 0 {
					e.Time = t0.Add(time.Duration(rng.IntN(3)) * time.Second)
				}
				if !e.OK {
					e.Problem = problem()
				}
				sums = append(sums, e.Receipt)
				msgs = append(msgs, Message{SHA256: e.Receipt, Size: 1, Kind: e.Kind, RefMsgID: msgid, ReceivedAt: now})
			}
			if k := (key{e.Recipient, e.Receipt}); !seen[k] {
				seen[k] = true
				evs = append(evs, e)
			}
		}
		var origs []Message
		for i := range rng.IntN(4) {
			own := msgid
			if rng.IntN(2) == 0 {
				own = fmt.Sprintf("copy%d.%s", i, msgid) // a provider's copy
			}
			var to []string
			for _, r := range rcpts {
				if rng.IntN(2) == 0 {
					to = append(to, r)
				}
			}
			if rng.IntN(5) == 0 {
				to = append(to, "")
			}
			m := Message{SHA256: newSum(), Size: 1, Kind: pec.KindNotPEC, MessageID: own, RefMsgID: msgid,
				Recipients: to, ReceivedAt: t0.Add(time.Duration(rng.IntN(2)) * time.Minute)}
			origs = append(origs, m)
			msgs = append(msgs, m)
		}
		// The history arrives in one to three commits, each receipt (with all its events) and each
		// original in one of them. After each, the stored deliveries are the model's for what has
		// arrived so far, and a row's updated_at moved exactly when the row changed.
		steps := 1 + rng.IntN(3)
		stepOf := map[[32]byte]int{}
		for _, m := range msgs {
			stepOf[m.SHA256] = rng.IntN(steps)
		}
		var sofarEvs []event
		var sofarOrigs []Message
		prev := map[string]Delivery{}
		for step := range steps {
			var b pgx.Batch
			var stepMsgs []Message
			for _, m := range msgs {
				if stepOf[m.SHA256] == step {
					m.LeafIndex = leaf
					leaf++
					stepMsgs = append(stepMsgs, m)
				}
			}
			if len(stepMsgs) == 0 {
				continue
			}
			var stepEvs []event
			var origIDs, evIDs, evRcpts []string
			for _, e := range evs {
				if stepOf[e.Receipt] == step {
					stepEvs = append(stepEvs, e)
					evIDs, evRcpts = append(evIDs, e.MsgID), append(evRcpts, e.Recipient)
				}
			}
			for _, o := range origs {
				if stepOf[o.SHA256] == step {
					sofarOrigs = append(sofarOrigs, o)
					origIDs = []string{msgid}
				}
			}
			queueMessages(&b, stepMsgs)
			if len(stepEvs) > 0 {
				queueEvents(&b, stepEvs)
			}
			stepNow := now.Add(time.Duration(step) * time.Hour)
			b.Queue(deliveriesSQL, []string{msgid}, stepNow, MaxText, origIDs, evIDs, evRcpts)
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tx.SendBatch(ctx, &b).Close(); err != nil {
				tx.Rollback(ctx)
				t.Fatalf("history %d: %v", iter, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			sofarEvs = append(sofarEvs, stepEvs...)

			want := derive(msgid, sofarEvs, modelOriginal(msgid, sofarOrigs), stepNow)
			got, err := cat.Deliveries(ctx, msgid)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				d := &got[i]
				d.AcceptedAt, d.StateAt, d.UpdatedAt = utc(d.AcceptedAt), utc(d.StateAt), utc(d.UpdatedAt)
				old, had := prev[d.Recipient]
				content, oldContent := *d, old
				content.UpdatedAt, oldContent.UpdatedAt = time.Time{}, time.Time{}
				switch {
				case had && content == oldContent && !d.UpdatedAt.Equal(old.UpdatedAt):
					t.Fatalf("history %d step %d: %s unchanged but rewritten", iter, step, d.Recipient)
				case (!had || content != oldContent) && !d.UpdatedAt.Equal(stepNow):
					t.Fatalf("history %d step %d: %s changed, updated_at %v, want %v", iter, step, d.Recipient, d.UpdatedAt, stepNow)
				}
				prev[d.Recipient] = *d
				d.UpdatedAt = stepNow // derive stamps every row; the check above covers updated_at
			}
			if len(want) == 0 && len(got) == 0 {
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("history %d step %d of %d (%d events, %d originals so far):\n got  %+v\n want %+v",
					iter, step+1, steps, len(sofarEvs), len(sofarOrigs), got, want)
			}
		}
	}
}

// modelOriginal is the original of msgid among origs: the original as sent first, then the
// earliest copy, then by hash; nil when there is none.
func modelOriginal(msgid string, origs []Message) *original {
	if len(origs) == 0 {
		return nil
	}
	best := origs[0]
	for _, o := range origs[1:] {
		switch {
		case (o.MessageID == msgid) != (best.MessageID == msgid):
			if o.MessageID == msgid {
				best = o
			}
		case !o.ReceivedAt.Equal(best.ReceivedAt):
			if o.ReceivedAt.Before(best.ReceivedAt) {
				best = o
			}
		case bytes.Compare(o.SHA256[:], best.SHA256[:]) < 0:
			best = o
		}
	}
	return &original{SHA256: best.SHA256, Recipients: best.Recipients}
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// catalog_clip cuts to whole characters within the byte limit, as clean does.
func TestClipMatchesClean(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PG(t)
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "abc", "èèè", "a€€€b", strings.Repeat("𝄞x", 50), strings.Repeat("è", 40) + "abc"} {
		for n := 0; n <= len(s)+1; n++ {
			var got string
			if err := pool.QueryRow(ctx, `SELECT catalog_clip($1, $2)`, s, n).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if want := clean(s, n); got != want {
				t.Fatalf("catalog_clip(%q, %d) = %q, clean gives %q", s, n, got, want)
			}
		}
	}
}

// The SQL list of receipt kinds (links by PEC id) is pec.Kind.IsReceipt, and the SQL classes of
// deliveriesSQL are classOf.
func TestSQLKindsMatchGo(t *testing.T) {
	kinds := []pec.Kind{pec.KindAccettazione, pec.KindNonAccettazione, pec.KindPresaInCarico, pec.KindAvvenutaConsegna,
		pec.KindPostaCertificata, pec.KindErroreConsegna, pec.KindPreavvisoErroreConsegna, pec.KindRilevazioneVirus,
		pec.KindAnomalia, pec.KindNotPEC}
	for _, k := range kinds {
		if in := strings.Contains(receiptKinds, "'"+string(k)+"'"); in != k.IsReceipt() {
			t.Errorf("%s: in receiptKinds %v, IsReceipt %v", k, in, k.IsReceipt())
		}
		when := fmt.Sprintf("WHEN '%s' THEN %d", k, classOf(k))
		if c := classOf(k); c != classNone && !strings.Contains(deliveriesSQL, when) {
			t.Errorf("%s: deliveriesSQL lacks %q", k, when)
		}
		if classOf(k) == classNone && strings.Contains(deliveriesSQL, "WHEN '"+string(k)+"'") {
			t.Errorf("%s: class none in Go, a class in deliveriesSQL", k)
		}
	}
}
