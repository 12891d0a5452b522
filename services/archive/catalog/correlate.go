package catalog

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/pec"
)

// event is one delivery_events row: what one receipt says about one (msgid, recipient).
type event struct {
	MsgID        string
	Recipient    string
	Receipt      [32]byte
	Kind         pec.Kind
	OK           bool
	Problem      string
	PECID        string
	Sender       string
	ReceiptType  string
	Errore       string
	ErroreEsteso string
	Time         time.Time
}

// class groups receipt kinds by the delivery state they lead to.
type class int

const (
	classNone class = iota
	classAcceptance
	classWarning
	classNonDelivery
	classDelivery
)

func classOf(k pec.Kind) class {
	switch k {
	case pec.KindAccettazione:
		return classAcceptance
	case pec.KindPreavvisoErroreConsegna:
		return classWarning
	case pec.KindErroreConsegna, pec.KindNonAccettazione:
		return classNonDelivery
	case pec.KindAvvenutaConsegna:
		return classDelivery
	}
	return classNone
}

// stateOf is the state a trusted receipt of class c establishes; classes are ordered by strength.
var stateOf = map[class]DeliveryState{
	classNone:        StatePending,
	classAcceptance:  StateAccepted,
	classWarning:     StateWarned,
	classNonDelivery: StateNotDelivered,
	classDelivery:    StateDelivered,
}

// verdictProblem says why a message's signature cannot support a delivery state, "" if it can.
func verdictProblem(m *Message) string {
	v := m.Verdict
	var what string
	switch {
	case !v.Present:
		what = "not signed"
	case !v.Valid:
		what = "signature not valid"
	case !v.Trusted:
		what = "signature not trusted"
	default:
		return ""
	}
	if len(v.Reasons) > 0 {
		what += " (" + strings.Join(v.Reasons, "; ") + ")"
	}
	return clean(what, MaxText)
}

// eventsOf returns the delivery events of a (normalised) receipt.
func eventsOf(m *Message) []event {
	if m.RefMsgID == "" {
		return nil
	}
	var rcpts []string
	switch classOf(m.Kind) {
	case classAcceptance:
		rcpts = m.Recipients
	case classNonDelivery:
		if m.Kind == pec.KindNonAccettazione || m.Consegna == "" {
			rcpts = m.Recipients
		} else {
			rcpts = []string{m.Consegna}
		}
	case classDelivery, classWarning:
		if m.Consegna != "" {
			rcpts = []string{m.Consegna}
		} else {
			rcpts = m.Recipients
		}
	default:
		return nil
	}
	problem := verdictProblem(m)
	t := m.DaticertTime
	if t.IsZero() {
		t = m.HeaderDate
	}
	seen := map[string]bool{}
	var out []event
	for _, r := range rcpts {
		if r == "" || seen[r] {
			continue
		}
		seen[r] = true
		out = append(out, event{
			MsgID: m.RefMsgID, Recipient: r, Receipt: m.SHA256, Kind: m.Kind,
			OK: problem == "", Problem: problem, PECID: m.PECID, Sender: m.Sender,
			ReceiptType: string(m.ReceiptType), Errore: string(m.Errore), ErroreEsteso: m.ErroreEsteso,
			Time: t,
		})
	}
	return out
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

// correlation holds what the correlation look-ups of a batch of new messages found: queued by
// queueCorrelation in Write's first round trip (after the messages rows, so it sees them),
// filled when that round trip's results are read, turned into writes by queueWrites.
type correlation struct {
	byID, byRef, env, rcpts map[string][][32]byte // keyed look-ups, see queueCorrelation
	have                    map[[32]byte]bool     // carried postacert.eml stored as messages
	carried                 [][2][32]byte         // (stored carrier, new carried message)
	newEvs                  []event               // delivery events of the new receipts
	evs                     map[string][]event    // stored delivery events of affected msgids
	origs                   map[string]*original  // originals of affected msgids
}

// The branches of correlateSQL, by their first column.
const (
	lookByID     = 1 // new referrers -> stored (or new) originals, by msgid
	lookByRef    = 2 // new originals <- stored (or new) referrers, by msgid
	lookEnvelope = 3 // receipts -> transport envelopes, by PEC id
	lookReceipts = 4 // transport envelopes <- receipts, by PEC id
	lookCarried  = 5 // carried postacert.eml stored as a message of its own
	lookCarriers = 6 // new messages carried inside stored ones (the carrier, then the carried)
)

// correlateSQL is the keyed look-ups of queueCorrelation, one branch per kind of link: each row is
// (branch, sha256, key, postacert_sha256 for lookCarriers).
const correlateSQL = `SELECT 1::int2, sha256, ref_msgid, NULL::bytea FROM messages
	WHERE kind = 'not-pec' AND ref_msgid <> '' AND ref_msgid = ANY($1::text[])
UNION ALL SELECT 2::int2, sha256, ref_msgid, NULL FROM messages
	WHERE kind <> 'not-pec' AND ref_msgid <> '' AND ref_msgid = ANY($2::text[])
UNION ALL SELECT 3::int2, sha256, pec_id, NULL FROM messages
	WHERE kind = 'posta-certificata' AND pec_id <> '' AND pec_id = ANY($3::text[])
UNION ALL SELECT 4::int2, sha256, pec_id, NULL FROM messages
	WHERE kind IN ('accettazione', 'non-accettazione', 'presa-in-carico', 'avvenuta-consegna',
	               'errore-consegna', 'preavviso-errore-consegna', 'rilevazione-virus')
	  AND pec_id <> '' AND pec_id = ANY($4::text[])
UNION ALL SELECT 5::int2, sha256, '', NULL FROM messages WHERE sha256 = ANY($5::bytea[])
UNION ALL SELECT 6::int2, sha256, '', postacert_sha256 FROM messages
	WHERE postacert_sha256 IS NOT NULL AND postacert_sha256 = ANY($6::bytea[])`

// queueCorrelation queues into batch the look-ups that link the new messages msgs (normalised,
// queued for insert earlier in batch) with what is stored, in both directions, and the stored
// delivery events and originals of every msgid they affect.
func queueCorrelation(batch *pgx.Batch, msgs []Message) *correlation {
	c := &correlation{have: map[[32]byte]bool{}, evs: map[string][]event{}, origs: map[string]*original{}}
	var refs, ids, receiptPECIDs, envelopePECIDs []string
	var inner [][]byte
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.RefMsgID == "":
		case m.Kind == pec.KindNotPEC:
			ids = append(ids, m.RefMsgID)
		default:
			refs = append(refs, m.RefMsgID)
		}
		if m.PECID != "" {
			if m.Kind.IsReceipt() {
				receiptPECIDs = append(receiptPECIDs, m.PECID)
			} else if m.Kind == pec.KindPostaCertificata {
				envelopePECIDs = append(envelopePECIDs, m.PECID)
			}
		}
		if m.PostacertSHA256 != ([32]byte{}) {
			inner = append(inner, m.PostacertSHA256[:])
		}
	}
	sums := make([][]byte, len(msgs))
	for i := range msgs {
		sums[i] = msgs[i].SHA256[:]
	}
	if inner == nil {
		inner = [][]byte{}
	}
	// One statement for the six keyed look-ups (each branch an index scan, or nothing for an
	// empty key list): a statement costs the server an executor start-up and an end whatever
	// it finds, and most of a commit's statements were these.
	c.byID, c.byRef, c.env, c.rcpts = map[string][][32]byte{}, map[string][][32]byte{}, map[string][][32]byte{}, map[string][][32]byte{}
	batch.Queue(correlateSQL, dedupe(refs), dedupe(ids), dedupe(receiptPECIDs), dedupe(envelopePECIDs), inner, sums).Query(func(rows pgx.Rows) error {
		var (
			tag    int16
			sha, o []byte
			key    string
		)
		_, err := pgx.ForEachRow(rows, []any{&tag, &sha, &key, &o}, func() error {
			var s [32]byte
			copySum(&s, sha)
			switch tag {
			case lookByID:
				c.byID[key] = append(c.byID[key], s)
			case lookByRef:
				c.byRef[key] = append(c.byRef[key], s)
			case lookEnvelope:
				c.env[key] = append(c.env[key], s)
			case lookReceipts:
				c.rcpts[key] = append(c.rcpts[key], s)
			case lookCarried:
				c.have[s] = true
			case lookCarriers:
				var p [2][32]byte
				p[0] = s
				copySum(&p[1], o)
				c.carried = append(c.carried, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("catalog: correlation look-up: %w", err)
		}
		return nil
	})

	// The msgids whose deliveries change: those of the new receipts' events and of the new
	// originals. Their stored events (the new ones are not inserted yet) and originals (new ones
	// included: they were inserted earlier in batch).
	affected := map[string]bool{}
	for _, id := range ids {
		affected[id] = true
	}
	for i := range msgs {
		for _, e := range eventsOf(&msgs[i]) {
			affected[e.MsgID] = true
			c.newEvs = append(c.newEvs, e)
		}
	}
	keys := make([]string, 0, len(affected))
	for k := range affected {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		batch.Queue(`SELECT msgid, recipient, receipt_sha256, kind, ok, problem, pec_id, sender,
			receipt_type, errore, errore_esteso, event_time FROM delivery_events WHERE msgid = ANY($1)`, keys).Query(c.readEvents)
		// The original of each msgid: the original as sent (own Message-ID = msgid) if stored,
		// else the first stored provider copy of it.
		batch.Queue(`SELECT DISTINCT ON (ref_msgid) ref_msgid, sha256, recipients FROM messages
			WHERE kind = 'not-pec' AND ref_msgid <> '' AND ref_msgid = ANY($1)
			ORDER BY ref_msgid, message_id <> ref_msgid, received_at, sha256`, keys).Query(c.readOriginals)
	}
	return c
}

// queueWrites queues into batch the writes the look-ups call for: links, the new delivery
// events, and the deliveries of every affected msgid derived from its events, stored and new.
func (c *correlation) queueWrites(batch *pgx.Batch, msgs []Message, now time.Time) {
	links := map[Link]bool{}
	add := func(r, o [32]byte, via string) {
		if r != o {
			links[Link{Referrer: r, Original: o, Via: via}] = true
		}
	}
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.RefMsgID == "":
		case m.Kind != pec.KindNotPEC:
			for _, o := range c.byID[m.RefMsgID] {
				add(m.SHA256, o, LinkMsgID)
			}
		default:
			for _, r := range c.byRef[m.RefMsgID] {
				add(r, m.SHA256, LinkMsgID)
			}
		}
		if m.PECID != "" {
			if m.Kind.IsReceipt() {
				for _, e := range c.env[m.PECID] {
					add(m.SHA256, e, LinkPECID)
				}
			} else if m.Kind == pec.KindPostaCertificata {
				for _, r := range c.rcpts[m.PECID] {
					add(r, m.SHA256, LinkPECID)
				}
			}
		}
		if c.have[m.PostacertSHA256] {
			add(m.SHA256, m.PostacertSHA256, LinkPostacert)
		}
	}
	for _, p := range c.carried {
		add(p[0], p[1], LinkPostacert)
	}
	if len(links) > 0 {
		var refSums, origSums [][]byte
		var vias []string
		for l := range links {
			refSums = append(refSums, l.Referrer[:])
			origSums = append(origSums, l.Original[:])
			vias = append(vias, l.Via)
		}
		batch.Queue(`INSERT INTO message_links (referrer_sha256, original_sha256, via)
			SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::text[]) ON CONFLICT DO NOTHING`, refSums, origSums, vias)
	}
	// The new events, the first of a key (delivery_events' primary key) winning. They are events
	// of receipts inserted in this transaction, so no stored event has their key.
	type key struct {
		msgid, rcpt string
		receipt     [32]byte
	}
	seen := make(map[key]bool, len(c.newEvs))
	newEvs := make([]event, 0, len(c.newEvs))
	for _, e := range c.newEvs {
		if k := (key{e.MsgID, e.Recipient, e.Receipt}); !seen[k] {
			seen[k] = true
			newEvs = append(newEvs, e)
		}
	}
	if len(newEvs) > 0 {
		queueEvents(batch, newEvs)
	}
	// Every event of the affected msgids: stored ones, then the new ones.
	for _, e := range newEvs {
		c.evs[e.MsgID] = append(c.evs[e.MsgID], e)
	}
	queueDeliveries(batch, c.evs, c.origs, now)
}

// queueEvents queues the insert of delivery_events rows: events of receipts inserted in this
// transaction, deduplicated by the caller, so they are inserted plainly (a speculative insertion
// would cost the server more for a conflict that cannot happen).
func queueEvents(batch *pgx.Batch, newEvs []event) {
	var (
		msgids, rcpts, kinds, problems, pecIDs, senders = make([]string, len(newEvs)), make([]string, len(newEvs)), make([]string, len(newEvs)), make([]string, len(newEvs)), make([]string, len(newEvs)), make([]string, len(newEvs))
		rtypes, errores, estesi                         = make([]string, len(newEvs)), make([]string, len(newEvs)), make([]string, len(newEvs))
		receipts                                        = make([][]byte, len(newEvs))
		oks                                             = make([]bool, len(newEvs))
		times                                           = make([]*time.Time, len(newEvs))
	)
	for i := range newEvs {
		e := &newEvs[i]
		msgids[i], rcpts[i], receipts[i], kinds[i], oks[i], problems[i] = e.MsgID, e.Recipient, e.Receipt[:], string(e.Kind), e.OK, e.Problem
		pecIDs[i], senders[i], rtypes[i], errores[i], estesi[i] = e.PECID, e.Sender, e.ReceiptType, e.Errore, e.ErroreEsteso
		if !e.Time.IsZero() {
			times[i] = &e.Time
		}
	}
	batch.Queue(`INSERT INTO delivery_events (msgid, recipient, receipt_sha256, kind, ok, problem, pec_id,
		sender, receipt_type, errore, errore_esteso, event_time)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::bool[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[])`,
		msgids, rcpts, receipts, kinds, oks, problems, pecIDs, senders, rtypes, errores, estesi, times)
}

func dedupe(l []string) []string {
	seen := make(map[string]bool, len(l))
	out := l[:0:0]
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// readEvents reads delivery_events rows into c.evs.
func (c *correlation) readEvents(rows pgx.Rows) error {
	var (
		e    event
		sha  []byte
		kind string
		t    *time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&e.MsgID, &e.Recipient, &sha, &kind, &e.OK, &e.Problem, &e.PECID, &e.Sender,
		&e.ReceiptType, &e.Errore, &e.ErroreEsteso, &t}, func() error {
		x := e
		copySum(&x.Receipt, sha)
		x.Kind = pec.Kind(kind)
		if t != nil {
			x.Time = *t
		} else {
			x.Time = time.Time{}
		}
		c.evs[x.MsgID] = append(c.evs[x.MsgID], x)
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: delivery events: %w", err)
	}
	return nil
}

// readOriginals reads (msgid, sha256, recipients) rows into c.origs.
func (c *correlation) readOriginals(rows pgx.Rows) error {
	var (
		id  string
		sha []byte
		rcp []string
	)
	_, err := pgx.ForEachRow(rows, []any{&id, &sha, &rcp}, func() error {
		o := &original{Recipients: append([]string(nil), rcp...)}
		copySum(&o.SHA256, sha)
		c.origs[id] = o
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: originals: %w", err)
	}
	return nil
}

// queueDeliveries queues the upsert of the deliveries derived for every msgid of evs.
func queueDeliveries(batch *pgx.Batch, evs map[string][]event, origs map[string]*original, now time.Time) {
	withEvents := make([]string, 0, len(evs))
	for k := range evs {
		withEvents = append(withEvents, k)
	}
	if len(withEvents) == 0 {
		return
	}
	sort.Strings(withEvents)
	var ds []Delivery
	for _, id := range withEvents {
		ds = append(ds, derive(id, evs[id], origs[id], now)...)
	}
	if len(ds) == 0 {
		return
	}
	// One statement: (msgid, recipient) is unique within ds (one msgid each, one row per
	// recipient), as ON CONFLICT DO UPDATE requires.
	n := len(ds)
	var (
		msgids, rcpts, pecIDs, senders, states = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		rtypes, errores, estesi, problems      = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		origSums, accs, dels, nondels, warns   = make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
		acceptedAt, stateAt                    = make([]*time.Time, n), make([]*time.Time, n)
		updatedAt                              = make([]time.Time, n)
	)
	sumOrNull := func(s [32]byte) []byte {
		if s == ([32]byte{}) {
			return nil
		}
		return s[:]
	}
	for i := range ds {
		d := &ds[i]
		msgids[i], rcpts[i], pecIDs[i], senders[i], states[i] = d.MsgID, d.Recipient, d.PECID, d.Sender, string(d.State)
		rtypes[i], errores[i], estesi[i], problems[i] = string(d.ReceiptType), string(d.Errore), d.ErroreEsteso, d.Problem
		origSums[i], accs[i], dels[i] = sumOrNull(d.Original), sumOrNull(d.Acceptance), sumOrNull(d.Delivery)
		nondels[i], warns[i] = sumOrNull(d.NonDelivery), sumOrNull(d.Warning)
		if !d.AcceptedAt.IsZero() {
			acceptedAt[i] = &d.AcceptedAt
		}
		if !d.StateAt.IsZero() {
			stateAt[i] = &d.StateAt
		}
		updatedAt[i] = d.UpdatedAt
	}
	batch.Queue(`INSERT INTO deliveries (msgid, recipient, pec_id, sender, state, receipt_type, errore,
		errore_esteso, original_sha256, acceptance_sha256, delivery_sha256, nondelivery_sha256,
		warning_sha256, accepted_at, state_at, problem, updated_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::bytea[], $10::bytea[], $11::bytea[], $12::bytea[], $13::bytea[], $14::timestamptz[],
			$15::timestamptz[], $16::text[], $17::timestamptz[])
		ON CONFLICT (msgid, recipient) DO UPDATE SET pec_id = EXCLUDED.pec_id, sender = EXCLUDED.sender,
		state = EXCLUDED.state, receipt_type = EXCLUDED.receipt_type, errore = EXCLUDED.errore,
		errore_esteso = EXCLUDED.errore_esteso, original_sha256 = EXCLUDED.original_sha256,
		acceptance_sha256 = EXCLUDED.acceptance_sha256, delivery_sha256 = EXCLUDED.delivery_sha256,
		nondelivery_sha256 = EXCLUDED.nondelivery_sha256, warning_sha256 = EXCLUDED.warning_sha256,
		accepted_at = EXCLUDED.accepted_at, state_at = EXCLUDED.state_at, problem = EXCLUDED.problem,
		updated_at = EXCLUDED.updated_at`,
		msgids, rcpts, pecIDs, senders, states, rtypes, errores, estesi, origSums, accs, dels, nondels, warns,
		acceptedAt, stateAt, problems, updatedAt)
}
