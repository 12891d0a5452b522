package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// What the audit needs of the catalog beyond its rows: every row of the tables derived from the
// messages rows (recipients, delivery events, links) derived again and compared with what is
// stored, every source read with its leaf index, and every certificate set read to be hashed.
// Everything is paged and set-based: one statement per page, each its own snapshot, so that a
// commit in between is seen whole or not at all (a commit writes a message with every row derived
// from it). Like the writer's (QueueLock), every read is a keyed look-up or a walk of an index,
// so each page runs with sequential scans off: on young tables or stale statistics the planner
// would otherwise scan a whole table for a page of keys.

// seqScanOffSQL turns sequential scans off until the end of the batch it starts (the implicit
// transaction of a pipeline, as set_config with is_local).
const seqScanOffSQL = `SELECT set_config('enable_seqscan', 'off', true)`

// query runs sql in a batch after seqScanOffSQL and passes its rows to scan.
func query(ctx context.Context, db DB, scan func(pgx.Rows) error, sql string, args ...any) error {
	var b pgx.Batch
	b.Queue(seqScanOffSQL)
	b.Queue(sql, args...).Query(scan)
	return db.SendBatch(ctx, &b).Close()
}

// Tables named in a [Mismatch].
const (
	TableRecipients = "message_recipients"
	TableEvents     = "delivery_events"
	TableLinks      = "message_links"
	TableSources    = "message_sources"
	TableChains     = "cert_chains"
	TableAnchors    = "trust_anchor_sets"
)

// Mismatch is a stored row that differs from what the messages rows make it, is missing, or has
// no reason to be there.
type Mismatch struct {
	Table  string
	SHA256 [32]byte // the message the row belongs to (or the certificate set); zero when none
	What   string
}

// AuditRow is a messages row with the sources of the message that have no leaf of their own:
// under a catalog/v2 leaf exactly one, the first source, which the message's leaf covers.
type AuditRow struct {
	Message
	Unlogged []Source
}

// AuditPage returns up to limit messages rows with leaf_index > after, in leaf order, each with
// its unlogged sources.
func AuditPage(ctx context.Context, db DB, after int64, limit int) ([]AuditRow, error) {
	// One round trip: the rows, then the sources of the same page of leaf indexes (a commit in
	// between adds messages with their sources: the page's rows have theirs).
	var out []AuditRow
	idx := map[[32]byte]int{}
	var b pgx.Batch
	b.Queue(seqScanOffSQL)
	b.Queue(`SELECT `+msgSelect+` FROM messages WHERE leaf_index > $1 ORDER BY leaf_index LIMIT $2`, after, limit).Query(func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return err
			}
			idx[m.SHA256] = len(out)
			out = append(out, AuditRow{Message: m})
		}
		return rows.Err()
	})
	b.Queue(`SELECT s.sha256, `+sourceSelectAs("s")+` FROM message_sources s
		WHERE s.leaf_index IS NULL AND s.sha256 IN (SELECT sha256 FROM messages WHERE leaf_index > $1 ORDER BY leaf_index LIMIT $2)
		ORDER BY s.id`, after, limit).Query(func(rows pgx.Rows) error {
		return forEachSource(rows, func(sum [32]byte, s Source, _ *int64) {
			if i, ok := idx[sum]; ok {
				out[i].Unlogged = append(out[i].Unlogged, s)
			}
		})
	})
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("catalog: audit page: %w", err)
	}
	return out, nil
}

// LoggedSource is a message_sources row with a leaf of its own.
type LoggedSource struct {
	SHA256    [32]byte
	Source    Source
	LeafIndex uint64
}

// LoggedSourcesPage returns up to limit sources with a leaf of their own whose leaf_index is
// greater than after, in leaf order.
func LoggedSourcesPage(ctx context.Context, db DB, after int64, limit int) ([]LoggedSource, error) {
	var out []LoggedSource
	err := query(ctx, db, func(rows pgx.Rows) error {
		return forEachSource(rows, func(sum [32]byte, s Source, leaf *int64) {
			out = append(out, LoggedSource{SHA256: sum, Source: s, LeafIndex: uint64(*leaf)})
		})
	}, `SELECT sha256, `+sourceSelect+`, leaf_index FROM message_sources
		WHERE leaf_index > $1 ORDER BY leaf_index LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: logged sources: %w", err)
	}
	return out, nil
}

const sourceSelect = `mailbox, folder, uidvalidity, uid, internaldate, path, parent_sha256, first_seen`

func sourceSelectAs(alias string) string {
	return alias + "." + strings.ReplaceAll(sourceSelect, ", ", ", "+alias+".")
}

// forEachSource scans rows of (sha256, sourceSelect columns[, leaf_index]).
func forEachSource(rows pgx.Rows, fn func(sum [32]byte, s Source, leaf *int64)) error {
	defer rows.Close()
	withLeaf := len(rows.FieldDescriptions()) > 9
	for rows.Next() {
		var (
			sum, parent []byte
			s           Source
			uv, uid     int64
			internal    *time.Time
			leaf        *int64
		)
		dest := []any{&sum, &s.Mailbox, &s.Folder, &uv, &uid, &internal, &s.Path, &parent, &s.FirstSeen}
		if withLeaf {
			dest = append(dest, &leaf)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		var k [32]byte
		copySum(&k, sum)
		copySum(&s.Parent, parent)
		s.UIDValidity, s.UID = uint32(uv), uint32(uid)
		if internal != nil {
			s.InternalDate = internal.UTC()
		}
		s.FirstSeen = s.FirstSeen.UTC()
		fn(k, s, leaf)
	}
	return rows.Err()
}

// CheckDerived derives again, from the messages rows page (as stored), the rows that commits
// derive from them, and returns those that the catalog lacks, holds otherwise, or holds without
// reason: the message_recipients rows of each message (missing ones; rows without reason are
// found by CheckRecipientsPage), the delivery_events of each receipt (eventsOf, as the commit
// wrote them), the message_links between each message and any other (linksSelectSQL, as the
// commit inserted them), and the certificate sets the messages refer to. One round trip.
func CheckDerived(ctx context.Context, db DB, page []Message) ([]Mismatch, error) {
	if len(page) == 0 {
		return nil, nil
	}
	var out []Mismatch
	var b pgx.Batch
	b.Queue(seqScanOffSQL)
	sums := make([][]byte, len(page))
	var links linkKeys
	var rcptSum [][]byte
	var rcptName []string
	var rcptTime []time.Time
	var evs []event
	var refMsg, refSet [][]byte
	var refTable []string
	for i := range page {
		m := page[i]
		m.Normalize()
		sums[i] = page[i].SHA256[:]
		links.add(&m)
		seen := map[string]bool{}
		for _, r := range indexedRecipients(&m) {
			if r != "" && !seen[r] {
				seen[r] = true
				rcptSum, rcptName, rcptTime = append(rcptSum, sums[i]), append(rcptName, r), append(rcptTime, m.ReceivedAt)
			}
		}
		evs = append(evs, eventsOf(&m)...)
		if m.ChainSHA256 != ([32]byte{}) {
			refMsg, refSet, refTable = append(refMsg, sums[i]), append(refSet, page[i].ChainSHA256[:]), append(refTable, TableChains)
		}
		if m.AnchorsSHA256 != ([32]byte{}) {
			refMsg, refSet, refTable = append(refMsg, sums[i]), append(refSet, page[i].AnchorsSHA256[:]), append(refTable, TableAnchors)
		}
	}
	add := func(table string, sum []byte, what string) {
		m := Mismatch{Table: table, What: what}
		copySum(&m.SHA256, sum)
		out = append(out, m)
	}

	b.Queue(`SELECT d.s, d.r FROM unnest($1::bytea[], $2::text[], $3::timestamptz[]) AS d(s, r, t)
		WHERE NOT EXISTS (SELECT 1 FROM message_recipients x WHERE x.recipient = d.r AND x.received_at = d.t AND x.sha256 = d.s OFFSET 0)`,
		rcptSum, rcptName, rcptTime).Query(func(rows pgx.Rows) error {
		var s []byte
		var r string
		_, err := pgx.ForEachRow(rows, []any{&s, &r}, func() error {
			add(TableRecipients, s, fmt.Sprintf("missing: the message is not listed under recipient %q", r))
			return nil
		})
		return err
	})

	e := newEventColumns(evs)
	b.Queue(checkEventsSQL, append(e.args(), sums)...).Query(func(rows pgx.Rows) error {
		var (
			s            []byte
			msgid, rcpt  string
			what, detail string
		)
		_, err := pgx.ForEachRow(rows, []any{&s, &msgid, &rcpt, &what, &detail}, func() error {
			add(TableEvents, s, fmt.Sprintf("%s: the event of msgid %q recipient %q%s", what, msgid, rcpt, detail))
			return nil
		})
		return err
	})

	b.Queue(checkLinksSQL, links.args(sums)...).Query(func(rows pgx.Rows) error {
		var r, o []byte
		var via, what string
		_, err := pgx.ForEachRow(rows, []any{&r, &o, &via, &what}, func() error {
			add(TableLinks, r, fmt.Sprintf("%s: the %s link to %x", what, via, o))
			return nil
		})
		return err
	})

	if len(refSet) > 0 {
		b.Queue(`SELECT d.m, d.s, d.t FROM unnest($1::bytea[], $2::bytea[], $3::text[]) AS d(m, s, t)
			WHERE (d.t = 'cert_chains' AND NOT EXISTS (SELECT 1 FROM cert_chains c WHERE c.sha256 = d.s))
			   OR (d.t = 'trust_anchor_sets' AND NOT EXISTS (SELECT 1 FROM trust_anchor_sets a WHERE a.sha256 = d.s))`,
			refMsg, refSet, refTable).Query(func(rows pgx.Rows) error {
			var m, set []byte
			var table string
			_, err := pgx.ForEachRow(rows, []any{&m, &set, &table}, func() error {
				add(table, m, fmt.Sprintf("missing: the message refers to %x, which is not stored", set))
				return nil
			})
			return err
		})
	}
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("catalog: check derived rows: %w", err)
	}
	return out, nil
}

// eventColumns are delivery events as the columns of one unnest (as queueEvents inserts them).
type eventColumns struct {
	msgids, rcpts, kinds, problems, pecIDs, senders, rtypes, errores, estesi []string
	receipts                                                                 [][]byte
	oks                                                                      []bool
	times                                                                    []*time.Time
}

func newEventColumns(evs []event) *eventColumns {
	c := &eventColumns{}
	for i := range evs {
		e := &evs[i]
		c.msgids, c.rcpts, c.receipts, c.kinds = append(c.msgids, e.MsgID), append(c.rcpts, e.Recipient), append(c.receipts, e.Receipt[:]), append(c.kinds, string(e.Kind))
		c.oks, c.problems, c.pecIDs, c.senders = append(c.oks, e.OK), append(c.problems, e.Problem), append(c.pecIDs, e.PECID), append(c.senders, e.Sender)
		c.rtypes, c.errores, c.estesi = append(c.rtypes, e.ReceiptType), append(c.errores, e.Errore), append(c.estesi, e.ErroreEsteso)
		var t *time.Time
		if !e.Time.IsZero() {
			t = &e.Time
		}
		c.times = append(c.times, t)
	}
	return c
}

func (c *eventColumns) args() []any {
	return []any{c.msgids, c.rcpts, c.receipts, c.kinds, c.oks, c.problems, c.pecIDs, c.senders, c.rtypes, c.errores, c.estesi, c.times}
}

// checkEventsSQL compares the derived events ($1-$12, as queueEvents inserts them) with the
// stored events of the receipts $13 (every message of the page: a non-receipt has none); an
// altered one is named with each column that differs, stored and derived from the receipt.
var checkEventsSQL = `WITH v (msgid, recipient, receipt_sha256, kind, ok, problem, pec_id, sender, receipt_type, errore,
	errore_esteso, event_time) AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::bool[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[])
), x AS (
	SELECT * FROM delivery_events WHERE receipt_sha256 = ANY($13::bytea[])
)
SELECT coalesce(v.receipt_sha256, x.receipt_sha256), coalesce(v.msgid, x.msgid), coalesce(v.recipient, x.recipient),
	CASE WHEN x.msgid IS NULL THEN 'missing' WHEN v.msgid IS NULL THEN 'extra' ELSE 'altered' END,
	CASE WHEN x.msgid IS NULL THEN format(' (the receipt says kind %s ok %s)', v.kind, v.ok::text)
	     WHEN v.msgid IS NULL THEN format(' (stored kind %s ok %s)', x.kind, x.ok::text)
	ELSE ': ' || concat_ws('; ', ` + columnsDiffSQL(eventCompared...) + `) END
FROM v FULL JOIN x ON x.msgid = v.msgid AND x.recipient = v.recipient AND x.receipt_sha256 = v.receipt_sha256
WHERE x.msgid IS NULL OR v.msgid IS NULL
   OR ` + rowsDifferSQL(eventCompared...)

// eventCompared are the columns a stored delivery event and one derived again from its receipt
// are compared on (checkEventsSQL).
var eventCompared = []string{"kind", "ok", "problem", "pec_id", "sender", "receipt_type", "errore", "errore_esteso", "event_time"}

// checkLinksSQL compares the links derived for the messages of its parameters (linkKeys.args:
// $11 is every message of the page) with the stored links from or to them.
const checkLinksSQL = `WITH d AS (` + linksSelectSQL + `
), x AS (
	SELECT referrer_sha256 AS r, original_sha256 AS o, via FROM message_links WHERE referrer_sha256 = ANY($11::bytea[])
	UNION
	SELECT referrer_sha256, original_sha256, via FROM message_links WHERE original_sha256 = ANY($11::bytea[])
)
SELECT coalesce(d.r, x.r), coalesce(d.o, x.o), coalesce(d.via, x.via),
	CASE WHEN x.r IS NULL THEN 'missing' ELSE 'extra' END
FROM d FULL JOIN x ON x.r = d.r AND x.o = d.o AND x.via = d.via
WHERE x.r IS NULL OR d.r IS NULL`

// Page sizes of the walks over the stored tables.
const checkPage = 1000

// CheckStoredRows walks table (TableRecipients, TableEvents, TableLinks or TableSources) in its
// key order, checkPage rows per statement, and calls bad for each row that no messages row
// accounts for: a message_recipients row that is not one of its message's indexed recipients at
// its received_at; a delivery_events, message_links or message_sources row naming a message that
// is not stored. (A row of a stored message is compared by CheckDerived, or, for sources, against
// the log.) It returns how many rows it walked.
func CheckStoredRows(ctx context.Context, db DB, table string, bad func(Mismatch) error) (uint64, error) {
	w, ok := storedRowWalks[table]
	if !ok {
		return 0, fmt.Errorf("%w: no walk of table %q", ErrInvalid, table)
	}
	var n uint64
	var cursor []any // the last row's key, nil before the first page
	for {
		sql, args := w.first, []any{checkPage}
		if cursor != nil {
			sql, args = w.next, append(cursor, checkPage)
		}
		key := w.key()
		var (
			sum   []byte
			isBad bool
			what  string
			got   int
			found []Mismatch
		)
		err := query(ctx, db, func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, append(key, &sum, &isBad, &what), func() error {
				got++
				if isBad {
					m := Mismatch{Table: table, What: what}
					copySum(&m.SHA256, sum)
					found = append(found, m)
				}
				return nil
			})
			return err
		}, sql, args...)
		n += uint64(got)
		for _, m := range found {
			if err := bad(m); err != nil {
				return n, err
			}
		}
		if err != nil {
			return n, fmt.Errorf("catalog: walk %s: %w", table, err)
		}
		if got < checkPage {
			return n, nil
		}
		cursor = cursor[:0]
		for _, k := range key {
			cursor = append(cursor, reflectValue(k))
		}
	}
}

// reflectValue returns what the scan destination p points at.
func reflectValue(p any) any {
	switch v := p.(type) {
	case *string:
		return *v
	case *time.Time:
		return *v
	case *[]byte:
		return *v
	case *int64:
		return *v
	}
	panic(fmt.Sprintf("catalog: no key column of type %T", p))
}

// storedRowWalk is one walk of CheckStoredRows. Its statements select the key columns, the
// message concerned, whether the row is unaccounted for and why; first takes the page size as
// $1, next the last key ($1...) and then the page size. OFFSET 0 keeps each NOT EXISTS a probe of
// the messages primary key per row (as in migration 0003): the planner would otherwise hash the
// whole messages table for a page of a thousand rows.
type storedRowWalk struct {
	first, next string
	key         func() []any // scan destinations of the key columns
}

var storedRowWalks = func() map[string]storedRowWalk {
	type walk struct {
		table, cols, params, check string
		key                        func() []any
	}
	walks := []walk{{
		table: TableRecipients, cols: "recipient, received_at, sha256", params: "($1, $2, $3)",
		key: func() []any { return []any{new(string), new(time.Time), new([]byte)} },
		check: `SELECT p.recipient, p.received_at, p.sha256, p.sha256,
			m.sha256 IS NULL OR p.received_at <> m.received_at OR p.recipient = ''
				OR NOT p.recipient = ANY(CASE WHEN m.kind IN ` + receiptKinds + ` AND m.consegna <> ''
					THEN ARRAY[m.consegna] ELSE m.recipients END),
			CASE WHEN m.sha256 IS NULL THEN format('extra: recipient %L of a message that is not stored', p.recipient)
			     WHEN p.received_at <> m.received_at THEN format('altered: recipient %L at %s, the message was received at %s', p.recipient, p.received_at, m.received_at)
			     ELSE format('extra: the message is not one to list under recipient %L', p.recipient) END
			FROM page p LEFT JOIN messages m ON m.sha256 = p.sha256 ORDER BY 1, 2, 3`,
	}, {
		table: TableEvents, cols: "msgid, recipient, receipt_sha256", params: "($1, $2, $3)",
		key: func() []any { return []any{new(string), new(string), new([]byte)} },
		check: `SELECT p.msgid, p.recipient, p.receipt_sha256, p.receipt_sha256,
			NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = p.receipt_sha256 OFFSET 0),
			format('extra: the event of msgid %L recipient %L names a receipt that is not stored', p.msgid, p.recipient)
			FROM page p ORDER BY 1, 2, 3`,
	}, {
		table: TableLinks, cols: "referrer_sha256, original_sha256, via", params: "($1, $2, $3)",
		key: func() []any { return []any{new([]byte), new([]byte), new(string)} },
		check: `SELECT p.referrer_sha256, p.original_sha256, p.via, p.referrer_sha256,
			NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = p.referrer_sha256 OFFSET 0)
				OR NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = p.original_sha256 OFFSET 0),
			format('extra: the %s link to %s names a message that is not stored', p.via, encode(p.original_sha256, 'hex'))
			FROM page p ORDER BY 1, 2, 3`,
	}, {
		table: TableSources, cols: "id, sha256", params: "$1",
		key: func() []any { return []any{new(int64)} },
		check: `SELECT p.id, p.sha256,
			NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = p.sha256 OFFSET 0),
			format('extra: source %s of a message that is not stored', p.id)
			FROM page p ORDER BY 1`,
	}}
	out := map[string]storedRowWalk{}
	for _, w := range walks {
		order := w.cols
		if w.table == TableSources {
			order = "id"
		}
		keyExpr := "(" + order + ")"
		if w.table == TableSources {
			keyExpr = "id"
		}
		limit := "$4"
		if w.table == TableSources {
			limit = "$2"
		}
		out[w.table] = storedRowWalk{
			first: `WITH page AS (SELECT ` + w.cols + ` FROM ` + w.table + ` ORDER BY ` + order + ` LIMIT $1) ` + w.check,
			next:  `WITH page AS (SELECT ` + w.cols + ` FROM ` + w.table + ` WHERE ` + keyExpr + ` > ` + w.params + ` ORDER BY ` + order + ` LIMIT ` + limit + `) ` + w.check,
			key:   w.key,
		}
	}
	return out
}()

// CertSetsPage returns up to limit certificate sets of table (TableChains or TableAnchors) whose
// SHA-256 is greater than after (nil: from the first), in that order, to be hashed again.
func CertSetsPage(ctx context.Context, db DB, table string, after []byte, limit int) ([]CertSet, error) {
	var sql string
	switch table {
	case TableChains:
		sql = `SELECT sha256, '', certs FROM cert_chains WHERE sha256 > $1 ORDER BY sha256 LIMIT $2`
	case TableAnchors:
		sql = `SELECT sha256, label, certs FROM trust_anchor_sets WHERE sha256 > $1 ORDER BY sha256 LIMIT $2`
	default:
		return nil, fmt.Errorf("%w: no certificate sets in %q", ErrInvalid, table)
	}
	if after == nil {
		after = []byte{}
	}
	var out []CertSet
	var (
		sum   []byte
		label string
		certs [][]byte
	)
	err := query(ctx, db, func(rows pgx.Rows) error {
		_, err := pgx.ForEachRow(rows, []any{&sum, &label, &certs}, func() error {
			c := CertSet{Label: label, Certs: certs}
			copySum(&c.SHA256, sum)
			out = append(out, c)
			certs = nil
			return nil
		})
		return err
	}, sql, after, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: %s: %w", table, err)
	}
	return out, nil
}

// AnchorsLabel is the label the archive stores with the anchor set sum.
func AnchorsLabel(sum [32]byte) string { return fmt.Sprintf("pec/smime anchors %x", sum) }

// CheckCertSet reports how the stored certificate set c of table differs from what its key says
// it is, "" when it does not: a chain's key is the SHA-256 of its certificates in order; an anchor
// set's the SHA-256 of its certificates sorted and without duplicates, stored in that order
// ([AnchorSet]), with the label the archive gives it.
func CheckCertSet(table string, c CertSet) string {
	switch table {
	case TableChains:
		if got := ChainSet(c.Certs).SHA256; got != c.SHA256 {
			return fmt.Sprintf("altered: its certificates hash to %x", got)
		}
	case TableAnchors:
		want := AnchorSet(c.Certs, "")
		switch {
		case want.SHA256 != c.SHA256:
			return fmt.Sprintf("altered: its certificates hash to %x", want.SHA256)
		case len(want.Certs) != len(c.Certs):
			return "altered: it lists a certificate twice"
		case c.Label != AnchorsLabel(c.SHA256):
			return fmt.Sprintf("altered: label %q, the archive labels it %q", c.Label, AnchorsLabel(c.SHA256))
		}
		for i := range c.Certs {
			if string(c.Certs[i]) != string(want.Certs[i]) {
				return "altered: its certificates are not in their canonical order"
			}
		}
	}
	return ""
}
