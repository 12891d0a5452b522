package catalog

import (
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

// queueCorrelation queues into batch, after the messages rows of msgs (normalised, new), the
// statements that correlate them with what is stored, in both directions: the delivery events of
// the new receipts, the links, and the deliveries of every msgid they affect, derived by the
// server from all the events of that msgid (see deliveriesSQL). Nothing is read back, so a
// commit needs no round trip between its inserts and its derived rows.
func queueCorrelation(batch *pgx.Batch, msgs []Message, now time.Time) {
	sums := make([][]byte, len(msgs))
	var links linkKeys
	affected := map[string]bool{}
	// The new events, the first of a key (delivery_events' primary key) winning. They are events
	// of receipts inserted in this transaction, so no stored event has their key.
	type key struct {
		msgid, rcpt string
		receipt     [32]byte
	}
	seen := map[key]bool{}
	var newEvs []event
	var evIDs, evRcpts []string
	for i := range msgs {
		m := &msgs[i]
		sums[i] = m.SHA256[:]
		links.add(m)
		for _, e := range eventsOf(m) {
			affected[e.MsgID] = true
			if k := (key{e.MsgID, e.Recipient, e.Receipt}); !seen[k] {
				seen[k] = true
				newEvs = append(newEvs, e)
				evIDs, evRcpts = append(evIDs, e.MsgID), append(evRcpts, e.Recipient)
			}
		}
	}
	// The msgids of new originals (linkKeys.origs): every delivery of each gains it, and its
	// recipients.
	for _, id := range links.origs {
		affected[id] = true
	}
	if len(newEvs) > 0 {
		queueEvents(batch, newEvs)
	}
	batch.Queue(linksSQL, links.args(sums)...)
	if len(affected) == 0 {
		return
	}
	keys := make([]string, 0, len(affected))
	for k := range affected {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	batch.Queue(deliveriesSQL, keys, now, MaxText, links.origs, evIDs, evRcpts)
}

// receiptKinds are the kinds of pec.Kind.IsReceipt, as an SQL list.
const receiptKinds = `('accettazione', 'non-accettazione', 'presa-in-carico', 'avvenuta-consegna',
	'errore-consegna', 'preavviso-errore-consegna', 'rilevazione-virus')`

// linksSQL inserts the links of new messages, in both directions, against every stored message,
// new ones included. Each branch takes its parameter arrays, pairs of (new message, key): the
// keys are an index condition on messages (= ANY of the array, so each is an index probe
// whatever the planner believes of the table's size: a join condition alone let stale
// statistics of a young table scan the whole index), and the pairs say which new message each
// match belongs to (see linkKeys).
const linksSQL = `INSERT INTO message_links (referrer_sha256, original_sha256, via)
` + linksSelectSQL + `
ON CONFLICT DO NOTHING`

// linksSelectSQL is the derivation of linksSQL: the links of the messages of its parameters with
// every stored message, in both directions. The audit runs it on pages of stored messages
// (CheckDerived).
const linksSelectSQL = `SELECT DISTINCT r, o, via FROM (
	-- new referrers -> originals, by msgid
	SELECT n.sha AS r, m.sha256 AS o, 'msgid' AS via
	FROM unnest($1::bytea[], $2::text[]) AS n(sha, k) JOIN messages m ON m.ref_msgid = n.k
	WHERE m.ref_msgid = ANY($2::text[]) AND m.kind = 'not-pec' AND m.ref_msgid <> ''
	UNION ALL -- new originals <- referrers, by msgid
	SELECT m.sha256, n.sha, 'msgid'
	FROM unnest($3::bytea[], $4::text[]) AS n(sha, k) JOIN messages m ON m.ref_msgid = n.k
	WHERE m.ref_msgid = ANY($4::text[]) AND m.kind <> 'not-pec' AND m.ref_msgid <> ''
	UNION ALL -- new receipts -> transport envelopes, by PEC id
	SELECT n.sha, m.sha256, 'pec-id'
	FROM unnest($5::bytea[], $6::text[]) AS n(sha, k) JOIN messages m ON m.pec_id = n.k
	WHERE m.pec_id = ANY($6::text[]) AND m.kind = 'posta-certificata' AND m.pec_id <> ''
	UNION ALL -- new transport envelopes <- receipts, by PEC id
	SELECT m.sha256, n.sha, 'pec-id'
	FROM unnest($7::bytea[], $8::text[]) AS n(sha, k) JOIN messages m ON m.pec_id = n.k
	WHERE m.pec_id = ANY($8::text[]) AND m.kind IN ` + receiptKinds + ` AND m.pec_id <> ''
	UNION ALL -- new messages -> the postacert.eml they carry, stored as a message of its own
	SELECT n.sha, m.sha256, 'postacert'
	FROM unnest($9::bytea[], $10::bytea[]) AS n(sha, k) JOIN messages m ON m.sha256 = n.k
	WHERE m.sha256 = ANY($10::bytea[])
	UNION ALL -- new messages <- the stored messages that carry them
	SELECT m.sha256, n.sha, 'postacert'
	FROM unnest($11::bytea[]) AS n(sha) JOIN messages m ON m.postacert_sha256 = n.sha
	WHERE m.postacert_sha256 = ANY($11::bytea[]) AND m.postacert_sha256 IS NOT NULL
) l WHERE r <> o`

// linkKeys are the parameters of linksSQL: per branch, the new messages and their keys.
type linkKeys struct {
	refSums, origSums, rcptSums, envSums, carrierSums [][]byte
	refs, origs, rcptIDs, envIDs                      []string
	carried                                           [][]byte
}

func (k *linkKeys) add(m *Message) {
	switch {
	case m.RefMsgID == "":
	case m.Kind == pec.KindNotPEC:
		k.origSums, k.origs = append(k.origSums, m.SHA256[:]), append(k.origs, m.RefMsgID)
	default:
		k.refSums, k.refs = append(k.refSums, m.SHA256[:]), append(k.refs, m.RefMsgID)
	}
	if m.PECID != "" {
		if m.Kind.IsReceipt() {
			k.rcptSums, k.rcptIDs = append(k.rcptSums, m.SHA256[:]), append(k.rcptIDs, m.PECID)
		} else if m.Kind == pec.KindPostaCertificata {
			k.envSums, k.envIDs = append(k.envSums, m.SHA256[:]), append(k.envIDs, m.PECID)
		}
	}
	if m.PostacertSHA256 != ([32]byte{}) {
		k.carrierSums, k.carried = append(k.carrierSums, m.SHA256[:]), append(k.carried, m.PostacertSHA256[:])
	}
}

func (k *linkKeys) args(sums [][]byte) []any {
	return []any{k.refSums, k.refs, k.origSums, k.origs, k.rcptSums, k.rcptIDs, k.envSums, k.envIDs,
		k.carrierSums, k.carried, sums}
}

// deliveriesSQL derives the deliveries of the msgids $1 from all their delivery events and
// their original, and writes those that are new or changed (updated_at $2, problem cut to $3
// bytes). Of a msgid that has rows, it derives again only the rows of the recipients of the new
// events ($5, $6), unless a new original ($4) or a new PEC id or sender concerns them all; a row
// the derivation leaves as it was is not touched; and a row whose recipient a new original took
// away is deleted. So a receipt about one of a message's many recipients costs one row, not one
// per recipient. A msgid without events gets none. Per (msgid, recipient), recipients being
// those of the events and of the original:
//   - for each class of receipt (acceptance 1, warning 2, non-delivery 3, delivery 4) the best
//     event: valid and trusted first, then the earliest (unknown time last), then by hash;
//   - the state is that of the highest class whose best event is trusted, else pending;
//   - the problem names the untrusted best events of the classes above the state;
//   - PEC id and sender are the first non-empty ones among all the msgid's events in the same
//     order; the original is the original as sent if stored, else the first provider copy.
//
// The reference model of this rule is the Go derive function of the package's tests, which
// compares the two on random histories.
var deliveriesSQL = deriveDeliveriesSQL + `), gone AS (
	-- Rows whose recipient is no longer among its msgid's recipients: one of a provider copy
	-- that a new original ($4), the original as sent, replaced as the msgid's original.
	DELETE FROM deliveries x WHERE x.msgid = ANY($4::text[])
	  AND NOT EXISTS (SELECT 1 FROM rcpt r WHERE r.msgid = x.msgid AND r.recipient = x.recipient)
)
-- Only rows that are new or differ from the stored ones: an upsert would lock (and log) every
-- row it leaves unchanged.
INSERT INTO deliveries (msgid, recipient, pec_id, sender, state, receipt_type, errore,
	errore_esteso, original_sha256, acceptance_sha256, delivery_sha256, nondelivery_sha256,
	warning_sha256, accepted_at, state_at, problem, updated_at)
SELECT v.*, $2::timestamptz FROM derived v
LEFT JOIN cur x ON x.msgid = v.msgid AND x.recipient = v.recipient
WHERE x.msgid IS NULL OR ` + deliveryDiffersSQL + `
ON CONFLICT (msgid, recipient) DO UPDATE SET pec_id = EXCLUDED.pec_id, sender = EXCLUDED.sender,
	state = EXCLUDED.state, receipt_type = EXCLUDED.receipt_type, errore = EXCLUDED.errore,
	errore_esteso = EXCLUDED.errore_esteso, original_sha256 = EXCLUDED.original_sha256,
	acceptance_sha256 = EXCLUDED.acceptance_sha256, delivery_sha256 = EXCLUDED.delivery_sha256,
	nondelivery_sha256 = EXCLUDED.nondelivery_sha256, warning_sha256 = EXCLUDED.warning_sha256,
	accepted_at = EXCLUDED.accepted_at, state_at = EXCLUDED.state_at, problem = EXCLUDED.problem,
	updated_at = EXCLUDED.updated_at`

// deriveDeliveriesSQL is the derivation of deliveriesSQL up to its result, the CTE derived (the
// rows as they should be) next to cur (the rows as stored).
const deriveDeliveriesSQL = `WITH ev AS (
	SELECT e.*, CASE e.kind WHEN 'accettazione' THEN 1 WHEN 'preavviso-errore-consegna' THEN 2
		WHEN 'errore-consegna' THEN 3 WHEN 'non-accettazione' THEN 3 WHEN 'avvenuta-consegna' THEN 4
		ELSE 0 END AS cls
	FROM delivery_events e WHERE e.msgid = ANY($1::text[])
), head AS (
	SELECT msgid,
		(array_agg(pec_id ORDER BY ok DESC, event_time ASC NULLS LAST, receipt_sha256) FILTER (WHERE pec_id <> ''))[1] AS pec_id,
		(array_agg(sender ORDER BY ok DESC, event_time ASC NULLS LAST, receipt_sha256) FILTER (WHERE sender <> ''))[1] AS sender
	FROM ev GROUP BY msgid
), orig AS (
	SELECT DISTINCT ON (ref_msgid) ref_msgid AS msgid, sha256, recipients FROM messages
	WHERE kind = 'not-pec' AND ref_msgid <> '' AND ref_msgid = ANY($1::text[])
	ORDER BY ref_msgid, message_id <> ref_msgid, received_at, sha256
), cur AS (
	-- The stored rows of those msgids, read by the primary key (an index condition on the
	-- array, so no other index is chosen from a young table's stale statistics).
	SELECT * FROM deliveries WHERE msgid = ANY($1::text[])
), whole AS (
	-- The msgids whose every row is derived again: a new original ($4; it is every row's
	-- original, and its recipients may add pending rows), no rows yet, or a PEC id or sender that
	-- is not the rows' (all rows of a msgid share them: each change of them rewrites all).
	SELECT h.msgid FROM head h
	WHERE h.msgid = ANY($4::text[])
	   OR NOT EXISTS (SELECT 1 FROM cur x WHERE x.msgid = h.msgid
	                  AND x.pec_id = coalesce(h.pec_id, '') AND x.sender = coalesce(h.sender, ''))
), rcpt AS (
	-- The rows to derive: every recipient of those msgids, and of the others the recipients of
	-- the new events ($5, $6), whose rows alone those events can change.
	SELECT msgid, recipient FROM ev WHERE msgid IN (SELECT msgid FROM whole)
	UNION
	SELECT o.msgid, x.r FROM orig o CROSS JOIN LATERAL unnest(o.recipients) AS x(r)
	WHERE x.r <> '' AND o.msgid IN (SELECT msgid FROM whole)
	UNION
	SELECT t.msgid, t.recipient FROM unnest($5::text[], $6::text[]) AS t(msgid, recipient)
), best AS (
	SELECT DISTINCT ON (msgid, recipient, cls) ev.* FROM ev JOIN rcpt USING (msgid, recipient) WHERE cls > 0
	ORDER BY msgid, recipient, cls, ok DESC, event_time ASC NULLS LAST, receipt_sha256
), derived (msgid, recipient, pec_id, sender, state, receipt_type, errore, errore_esteso,
	original_sha256, acceptance_sha256, delivery_sha256, nondelivery_sha256, warning_sha256,
	accepted_at, state_at, problem) AS (
SELECT r.msgid, r.recipient, coalesce(h.pec_id, ''), coalesce(h.sender, ''),
	(ARRAY['pending', 'accepted', 'warned', 'not-delivered', 'delivered'])[s.cls + 1],
	coalesce(d.receipt_type, ''), coalesce(n.errore, ''), coalesce(n.errore_esteso, w.errore_esteso, ''),
	o.sha256, a.receipt_sha256, d.receipt_sha256, n.receipt_sha256, w.receipt_sha256,
	a.event_time,
	CASE s.cls WHEN 4 THEN d.event_time WHEN 3 THEN n.event_time WHEN 2 THEN w.event_time WHEN 1 THEN a.event_time END,
	CASE WHEN octet_length(p.problem) <= $3::int THEN p.problem ELSE catalog_clip(p.problem, $3::int) END
FROM rcpt r
JOIN head h ON h.msgid = r.msgid
LEFT JOIN orig o ON o.msgid = r.msgid
LEFT JOIN best a ON a.msgid = r.msgid AND a.recipient = r.recipient AND a.cls = 1
LEFT JOIN best w ON w.msgid = r.msgid AND w.recipient = r.recipient AND w.cls = 2
LEFT JOIN best n ON n.msgid = r.msgid AND n.recipient = r.recipient AND n.cls = 3
LEFT JOIN best d ON d.msgid = r.msgid AND d.recipient = r.recipient AND d.cls = 4
CROSS JOIN LATERAL (SELECT CASE WHEN d.ok THEN 4 WHEN n.ok THEN 3 WHEN w.ok THEN 2 WHEN a.ok THEN 1 ELSE 0 END AS cls) s
CROSS JOIN LATERAL (SELECT concat_ws('; ',
	CASE WHEN s.cls < 4 AND NOT d.ok THEN format('%s receipt %s: %s', d.kind, encode(substr(d.receipt_sha256, 1, 6), 'hex'), d.problem) END,
	CASE WHEN s.cls < 3 AND NOT n.ok THEN format('%s receipt %s: %s', n.kind, encode(substr(n.receipt_sha256, 1, 6), 'hex'), n.problem) END,
	CASE WHEN s.cls < 2 AND NOT w.ok THEN format('%s receipt %s: %s', w.kind, encode(substr(w.receipt_sha256, 1, 6), 'hex'), w.problem) END,
	CASE WHEN s.cls < 1 AND NOT a.ok THEN format('%s receipt %s: %s', a.kind, encode(substr(a.receipt_sha256, 1, 6), 'hex'), a.problem) END
) AS problem) p
`

// deliveryCompared are the columns a stored deliveries row and a derived one are compared on,
// updated_at aside.
var deliveryCompared = []string{"pec_id", "sender", "state", "receipt_type", "errore", "errore_esteso",
	"original_sha256", "acceptance_sha256", "delivery_sha256", "nondelivery_sha256", "warning_sha256",
	"accepted_at", "state_at", "problem"}

// deliveryDiffersSQL compares a stored deliveries row x with a derived one v, updated_at aside.
var deliveryDiffersSQL = rowsDifferSQL(deliveryCompared...)

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
