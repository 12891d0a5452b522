package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/pec"
)

// msgCols are the messages columns, in the order of [Message.values] and [scanMessage].
var msgCols = []string{
	"sha256", "size", "kind", "message_id", "pec_id", "orig_msgid", "x_riferimento", "ref_msgid",
	"sender", "from_addr", "recipients", "recipient_types", "subject", "provider",
	"daticert_time", "daticert_zone", "header_date", "receipt_type", "errore", "errore_esteso",
	"consegna", "sig_present", "sig_valid", "sig_trusted", "digest_alg", "signer", "signer_email",
	"index_provider", "signed_at", "verified_at", "reasons", "reason_details", "problems", "chain_sha256", "anchors_sha256",
	"postacert_sha256", "leaf_index", "received_at", "contained_in", "blob_version",
}

const msgSelect = `sha256, size, kind, message_id, pec_id, orig_msgid, x_riferimento, ref_msgid,
	sender, from_addr, recipients, recipient_types, subject, provider,
	daticert_time, daticert_zone, header_date, receipt_type, errore, errore_esteso,
	consegna, sig_present, sig_valid, sig_trusted, digest_alg, signer, signer_email,
	index_provider, signed_at, verified_at, reasons, reason_details, problems, chain_sha256, anchors_sha256,
	postacert_sha256, leaf_index, received_at, contained_in, blob_version`

// maxInsertRows bounds the rows of one multi-row INSERT into messages (parameters are limited to
// 65535 per statement; each row takes len(msgCols)).
const maxInsertRows = 64

// insertMessagesSQL[n-1] inserts n messages rows, the values of [Message.values] of each in turn:
// one statement per batch of rows, one execution for the server instead of n.
var insertMessagesSQL = func() []string {
	out := make([]string, maxInsertRows)
	var rows []string
	for n := 1; n <= maxInsertRows; n++ {
		ph := make([]string, len(msgCols))
		for i := range ph {
			ph[i] = fmt.Sprintf("$%d", (n-1)*len(msgCols)+i+1)
		}
		rows = append(rows, "("+strings.Join(ph, ", ")+")")
		out[n-1] = `INSERT INTO messages (` + strings.Join(msgCols, ", ") + `) VALUES ` + strings.Join(rows, ", ")
	}
	return out
}()

// queueMessages queues the inserts of msgs into batch, maxInsertRows rows per statement.
func queueMessages(batch *pgx.Batch, msgs []Message) {
	for len(msgs) > 0 {
		n := min(len(msgs), maxInsertRows)
		args := make([]any, 0, n*len(msgCols))
		for i := range n {
			args = append(args, messageValues(&msgs[i])...)
		}
		batch.Queue(insertMessagesSQL[n-1], args...)
		msgs = msgs[n:]
	}
}

// msgSelectAs is msgSelect with every column qualified by alias.
func msgSelectAs(alias string) string {
	cols := make([]string, len(msgCols))
	for i, c := range msgCols {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

func sumOrNil(s [32]byte) any {
	if s == ([32]byte{}) {
		return nil
	}
	return s[:]
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// messageValues returns the columns of the messages row of m, in msgCols order.
func messageValues(m *Message) []any {
	var zone any
	if !m.DaticertTime.IsZero() {
		_, off := m.DaticertTime.Zone()
		zone = int32(off)
	}
	return []any{
		m.SHA256[:], m.Size, string(m.Kind), m.MessageID, m.PECID, m.OrigMsgID, m.XRiferimento, m.RefMsgID,
		m.Sender, m.From, nonNil(m.Recipients), nonNil(m.RecipientTypes), m.Subject, m.Provider,
		timeOrNil(m.DaticertTime), zone, timeOrNil(m.HeaderDate), string(m.ReceiptType), string(m.Errore), m.ErroreEsteso,
		m.Consegna, m.Verdict.Present, m.Verdict.Valid, m.Verdict.Trusted, m.Verdict.Digest, m.Verdict.Signer, m.Verdict.SignerEmail,
		m.Verdict.Provider, timeOrNil(m.Verdict.SignedAt), timeOrNil(m.Verdict.VerifiedAt),
		nonNil(m.Verdict.Reasons), nonNil(m.Verdict.Details), nonNil(m.Problems),
		sumOrNil(m.ChainSHA256), sumOrNil(m.AnchorsSHA256), sumOrNil(m.PostacertSHA256), int64(m.LeafIndex), m.ReceivedAt, sumOrNil(m.ContainedIn),
		m.BlobVersion,
	}
}

func copySum(dst *[32]byte, b []byte) {
	if len(b) == 32 {
		copy(dst[:], b)
	}
}

func scanMessage(row pgx.Row) (Message, error) {
	var (
		m                              Message
		sha, chain, anchors, postacert []byte
		contained                      []byte
		kind, rtype, errore            string
		dt, hd, signed, verified       *time.Time
		zone                           *int32
		leaf                           int64
	)
	err := row.Scan(&sha, &m.Size, &kind, &m.MessageID, &m.PECID, &m.OrigMsgID, &m.XRiferimento, &m.RefMsgID,
		&m.Sender, &m.From, &m.Recipients, &m.RecipientTypes, &m.Subject, &m.Provider,
		&dt, &zone, &hd, &rtype, &errore, &m.ErroreEsteso,
		&m.Consegna, &m.Verdict.Present, &m.Verdict.Valid, &m.Verdict.Trusted, &m.Verdict.Digest, &m.Verdict.Signer, &m.Verdict.SignerEmail,
		&m.Verdict.Provider, &signed, &verified, &m.Verdict.Reasons, &m.Verdict.Details, &m.Problems, &chain, &anchors,
		&postacert, &leaf, &m.ReceivedAt, &contained, &m.BlobVersion)
	if err != nil {
		return Message{}, err
	}
	copySum(&m.SHA256, sha)
	copySum(&m.ChainSHA256, chain)
	copySum(&m.AnchorsSHA256, anchors)
	copySum(&m.PostacertSHA256, postacert)
	copySum(&m.ContainedIn, contained)
	m.Kind = pec.Kind(kind)
	m.ReceiptType = pec.ReceiptType(rtype)
	m.Errore = pec.ErrorCode(errore)
	if dt != nil {
		off := 0
		if zone != nil {
			off = int(*zone)
		}
		m.DaticertTime = dt.In(fixedZone(off))
	}
	if hd != nil {
		m.HeaderDate = hd.UTC()
	}
	if signed != nil {
		m.Verdict.SignedAt = signed.UTC()
	}
	if verified != nil {
		m.Verdict.VerifiedAt = verified.UTC()
	}
	m.LeafIndex = uint64(leaf)
	m.ReceivedAt = m.ReceivedAt.UTC()
	return m, nil
}

func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	sign := byte('+')
	o := off
	if o < 0 {
		sign, o = '-', -o
	}
	return time.FixedZone(fmt.Sprintf("%c%02d%02d", sign, o/3600, o%3600/60), off)
}

const (
	// writerLockSQL turns sequential scans off for the rest of the transaction (set_config with
	// is_local, as SET LOCAL) and takes the writer lock, in one statement.
	writerLockSQL = `SELECT set_config('enable_seqscan', 'off', true),
		pg_advisory_xact_lock(hashtextextended('pecarchive.catalog.writer:' || coalesce(current_schema(), ''), 0))`
	lookupSQL = `SELECT ` + msgSelect + ` FROM messages WHERE sha256 = ANY($1)`
)

// QueueLock queues into b, a batch sent inside the writer's transaction (for instance the one that
// begins it, see pgx.Batch.BeginTx), the statement that takes the catalog's writer lock for the
// rest of the transaction (a transaction-level advisory lock keyed by the current schema).
// Writers that check which messages exist and then insert them hold it, so two replicas never
// both insert the same message: the second waits, then sees the first one's rows. A writer that
// knows its messages are new (an insert of a stored one then fails on the primary key) needs no
// look-up ([QueueLockAndLookup]).
//
// The statement also turns sequential scans off for the rest of the transaction: every read of
// the write path is a keyed look-up that must use its index, and on young tables (not yet
// analysed, or a cached generic plan made when they were empty) the planner otherwise scans the
// whole table on every batch, which made commits grow linearly with the catalog until autovacuum
// caught up.
func QueueLock(b *pgx.Batch) {
	b.Queue(writerLockSQL)
}

// QueueLockAndLookup queues [QueueLock]'s statement and then the look-up of the stored messages
// among sums into b, a batch sent inside the writer's transaction (for instance the one that
// begins it, see pgx.Batch.BeginTx), so that a caller can send its own statements in the same
// round trip. The look-up is a statement of its own after the lock, so its snapshot is taken once
// the lock is granted. The stored messages among sums are added to into when b's results are read
// (BatchResults.Close), which fails if the lock or the look-up does.
func QueueLockAndLookup(b *pgx.Batch, sums [][32]byte, into map[[32]byte]Message) {
	b.Queue(writerLockSQL)
	keys := make([][]byte, len(sums))
	for i := range sums {
		keys[i] = sums[i][:]
	}
	b.Queue(lookupSQL, keys).Query(func(rows pgx.Rows) error {
		return scanLookupInto(rows, into)
	})
}

// Lookup returns the stored messages among sums.
func Lookup(ctx context.Context, db DB, sums [][32]byte) (map[[32]byte]Message, error) {
	if len(sums) == 0 {
		return make(map[[32]byte]Message), nil
	}
	keys := make([][]byte, len(sums))
	for i := range sums {
		keys[i] = sums[i][:]
	}
	rows, err := db.Query(ctx, lookupSQL, keys)
	if err != nil {
		return nil, fmt.Errorf("catalog: lookup: %w", err)
	}
	return scanLookup(rows)
}

func scanLookup(rows pgx.Rows) (map[[32]byte]Message, error) {
	out := make(map[[32]byte]Message)
	if err := scanLookupInto(rows, out); err != nil {
		return nil, err
	}
	return out, nil
}

func scanLookupInto(rows pgx.Rows, out map[[32]byte]Message) error {
	defer rows.Close()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return fmt.Errorf("catalog: lookup: %w", err)
		}
		out[m.SHA256] = m
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: lookup: %w", err)
	}
	return nil
}

// Batch is what one commit writes.
type Batch struct {
	// Messages are new messages (not stored yet), with LeafIndex and ReceivedAt set.
	Messages []Message
	// Sources are the sources seen, for new and already stored messages; a source already
	// recorded for that message is skipped.
	Sources []SourceRow
	// CertSets are the chains and anchor sets the messages refer to; ones already stored are
	// skipped.
	Chains  []CertSet
	Anchors []CertSet
	// Accesses are new access records (see [Access]), normalised, with LeafIndex and At set.
	Accesses []Access
	// Now stamps derived rows (deliveries.updated_at, sources first_seen when zero).
	Now time.Time
	// Before and After are statements of the caller's own that ride on Write's round trip, so
	// that a commit costs fewer of them: Before are sent ahead of Write's statements, After
	// behind them. A caller puts its own writes in Before (the log's leaves, say) and
	// COMMIT in After. Their results are read through their callbacks (pgx.QueuedQuery.Exec,
	// Query, QueryRow), or discarded; an error in any of them fails Write, and the transaction
	// must then be rolled back.
	Before, After []*pgx.QueuedQuery
}

// Sender sends batches of statements inside one transaction: a pgx.Tx, or a caller's own whose
// first batch begins the transaction (pgx.Batch.BeginTx) so that beginning costs no round trip.
type Sender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Write writes b inside tx (which should hold the writer lock, see [QueueLock]): certificate sets, messages, sources,
// then links and delivery states for the new messages, resolved in both directions against
// everything already stored and everything in b.
func Write(ctx context.Context, tx Sender, b *Batch) error {
	now := b.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = normTime(now).UTC()
	msgs := make([]Message, len(b.Messages))
	for i := range b.Messages {
		msgs[i] = b.Messages[i]
		msgs[i].Normalize()
		if msgs[i].Size <= 0 {
			return fmt.Errorf("%w: message %x: size %d", ErrInvalid, msgs[i].SHA256[:4], msgs[i].Size)
		}
		if msgs[i].ReceivedAt.IsZero() {
			msgs[i].ReceivedAt = now
		}
	}
	// One round trip: the caller's Before, certificate sets, messages rows, recipients, sources
	// and, for new messages, their delivery events, links and deliveries (see queueCorrelation),
	// then the caller's After. Statements of a pipeline run in order, so each sees the rows
	// written before it.
	var batch pgx.Batch
	batch.QueuedQueries = append(batch.QueuedQueries, b.Before...)
	queueCertSets(&batch, b.Chains, b.Anchors)
	queueMessages(&batch, msgs)
	var rcptSum [][]byte
	var rcptName []string
	var rcptTime []time.Time
	for i := range msgs {
		seen := map[string]bool{}
		for _, r := range indexedRecipients(&msgs[i]) {
			if r != "" && !seen[r] {
				seen[r] = true
				rcptName = append(rcptName, r)
				rcptTime = append(rcptTime, msgs[i].ReceivedAt)
				rcptSum = append(rcptSum, msgs[i].SHA256[:])
			}
		}
	}
	if len(rcptName) > 0 {
		batch.Queue(`INSERT INTO message_recipients (recipient, received_at, sha256)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bytea[])`, rcptName, rcptTime, rcptSum)
	}
	newSums := make(map[[32]byte]bool, len(msgs))
	for i := range msgs {
		newSums[msgs[i].SHA256] = true
	}
	queueSources(&batch, b.Sources, now, newSums)
	if len(msgs) > 0 {
		queueCorrelation(&batch, msgs, now)
	}
	queueAccesses(&batch, b.Accesses)
	batch.QueuedQueries = append(batch.QueuedQueries, b.After...)
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			return fmt.Errorf("catalog: write: %w", err)
		}
	}
	return nil
}

// indexedRecipients are the recipients a message is found under in message_recipients (lookups
// by recipient): all of them, except for a receipt about one recipient (daticert consegna: a
// delivery, non-delivery or warning receipt), found under that one only. Its daticert lists
// every recipient of the original, so a message sent to 500 would otherwise add 500 rows for
// each of its 500 receipts, and a search by recipient would list receipts about the others.
func indexedRecipients(m *Message) []string {
	if m.Kind.IsReceipt() && m.Consegna != "" {
		return []string{m.Consegna}
	}
	return m.Recipients
}

// queueCertSets queues the inserts of the certificate sets into batch.
func queueCertSets(batch *pgx.Batch, chains, anchors []CertSet) {
	seen := map[[32]byte]bool{}
	for _, c := range chains {
		if c.SHA256 == ([32]byte{}) || seen[c.SHA256] {
			continue
		}
		seen[c.SHA256] = true
		batch.Queue(`INSERT INTO cert_chains (sha256, certs) VALUES ($1, $2) ON CONFLICT DO NOTHING`, c.SHA256[:], c.Certs)
	}
	seen = map[[32]byte]bool{}
	for _, c := range anchors {
		if c.SHA256 == ([32]byte{}) || seen[c.SHA256] {
			continue
		}
		seen[c.SHA256] = true
		batch.Queue(`INSERT INTO trust_anchor_sets (sha256, label, certs) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			c.SHA256[:], clean(c.Label, MaxText), c.Certs)
	}
}

// queueSources queues the insert of srcs into batch. Rows of messages inserted in this
// transaction (newSums) cannot exist yet: they are deduplicated here and inserted plainly, which
// costs the server less than a speculative insertion. So are rows with a leaf of their own
// (Logged), which the writer found new under its lock: a conflict then fails the commit rather
// than leave a leaf without its row. Other rows of messages already stored go through ON
// CONFLICT DO NOTHING, so storing bytes again from the same place adds nothing.
func queueSources(batch *pgx.Batch, srcs []SourceRow, now time.Time, newSums map[[32]byte]bool) {
	seen := make(map[SourceKey]bool, len(srcs))
	var fresh, again sourceRows
	for _, s := range srcs {
		k := KeyOf(s.SHA256, &s.Source)
		switch {
		case !newSums[s.SHA256] && !s.Logged:
			again.add(k, s, now)
		case !seen[k]:
			seen[k] = true
			fresh.add(k, s, now)
		}
	}
	fresh.queue(batch, "")
	again.queue(batch, " ON CONFLICT DO NOTHING")
}

// SourceKey is the unique key of a message_sources row: a message and a place, as stored.
type SourceKey struct {
	sum, parent      [32]byte
	mailbox, folder  string
	path             string
	uidvalidity, uid int64
}

// KeyOf returns the key of the source src of the message sum.
func KeyOf(sum [32]byte, src *Source) SourceKey {
	return SourceKey{sum: sum, parent: src.Parent, mailbox: clean(src.Mailbox, MaxText), folder: clean(src.Folder, MaxText),
		path: clean(src.Path, MaxText), uidvalidity: int64(src.UIDValidity), uid: int64(src.UID)}
}

// sourceRows are message_sources rows as the columns of one unnest insert.
type sourceRows struct {
	sums, parents       [][]byte
	mailboxes, folders  []string
	paths               []string
	uidvalidities, uids []int64
	internaldates       []*time.Time
	firsts              []time.Time
	leaves              []*int64
}

func (r *sourceRows) add(k SourceKey, row SourceRow, now time.Time) {
	src := row.Source
	var leaf *int64
	if row.Logged {
		l := int64(row.LeafIndex)
		leaf = &l
	}
	r.leaves = append(r.leaves, leaf)
	fs := normTime(src.FirstSeen)
	if fs.IsZero() {
		fs = now
	}
	parent := []byte{}
	if k.parent != ([32]byte{}) {
		parent = k.parent[:]
	}
	var internal *time.Time
	if t := normTime(src.InternalDate); !t.IsZero() {
		internal = &t
	}
	r.sums, r.parents = append(r.sums, k.sum[:]), append(r.parents, parent)
	r.mailboxes, r.folders, r.paths = append(r.mailboxes, k.mailbox), append(r.folders, k.folder), append(r.paths, k.path)
	r.uidvalidities, r.uids = append(r.uidvalidities, k.uidvalidity), append(r.uids, k.uid)
	r.internaldates, r.firsts = append(r.internaldates, internal), append(r.firsts, fs)
}

func (r *sourceRows) queue(batch *pgx.Batch, onConflict string) {
	if len(r.sums) == 0 {
		return
	}
	batch.Queue(`INSERT INTO message_sources
		(sha256, mailbox, folder, uidvalidity, uid, internaldate, path, parent_sha256, first_seen, leaf_index)
		SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[],
			$7::text[], $8::bytea[], $9::timestamptz[], $10::bigint[])`+onConflict,
		r.sums, r.mailboxes, r.folders, r.uidvalidities, r.uids, r.internaldates, r.paths, r.parents, r.firsts, r.leaves)
}
