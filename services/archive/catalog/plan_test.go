package catalog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// recorder is a pgx tracer keeping the statements run through a pool, alone or in batches.
type recorder struct {
	mu   sync.Mutex
	on   bool
	qs   []traced
	skip map[string]bool
}

type traced struct {
	sql  string
	args []any
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.qs = append(r.qs, traced{d.SQL, d.Args})
	}
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *recorder) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (r *recorder) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.qs = append(r.qs, traced{d.SQL, d.Args})
	}
}

func (r *recorder) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (r *recorder) take() []traced {
	r.mu.Lock()
	defer r.mu.Unlock()
	qs := r.qs
	r.qs = nil
	return qs
}

// seqScans returns the relations a JSON plan scans sequentially.
func seqScans(plan any) []string {
	var out []string
	switch v := plan.(type) {
	case map[string]any:
		if v["Node Type"] == "Seq Scan" {
			out = append(out, fmt.Sprint(v["Relation Name"]))
		}
		for _, c := range v {
			out = append(out, seqScans(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, seqScans(c)...)
		}
	}
	return out
}

// bigEnough drops relations too small for the planner to prefer an index (it rightly scans a
// few pages sequentially); at the default size only messages qualifies.
func bigEnough(t *testing.T, ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, rels []string) []string {
	var out []string
	for _, r := range rels {
		var n float64
		if err := db.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = to_regclass($1)`, r).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= minPlanRows {
			out = append(out, r)
		} else {
			t.Logf("(sequential scan of %s with %.0f rows: fine at this size)", r, n)
		}
	}
	return out
}

const minPlanRows = 40_000

// Every read query and every correlation query of a commit uses an index on a catalog of
// PECARCHIVE_SCALE_ROWS messages (default 50,000; 500000 or more for the figures at scale).
func TestIndexPlans(t *testing.T) {
	rows := 50_000
	if s := os.Getenv("PECARCHIVE_SCALE_ROWS"); s != "" {
		rows, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	cfg := testenv.PGConfig(t)
	rec := &recorder{}
	cfg.ConnConfig.Tracer = rec
	pool := testenv.PGPool(t, cfg)
	if err := catalog.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Synthetic history: every 4 messages are an original's acceptance, delivery receipt,
	// envelope and the original itself; 1,000 senders, 5,000 recipients, one per second.
	_, err := pool.Exec(ctx, `
		INSERT INTO messages (sha256, size, kind, message_id, pec_id, orig_msgid, ref_msgid, sender, from_addr,
			recipients, recipient_types, subject, daticert_time, leaf_index, received_at)
		SELECT sha256(int8send(g)), 1000,
			(ARRAY['accettazione','avvenuta-consegna','posta-certificata','not-pec'])[g % 4 + 1],
			CASE g % 4 WHEN 3 THEN 'orig' || (g / 4) || '@client.it' ELSE 'm' || g || '@pec.it' END,
			CASE g % 4 WHEN 3 THEN '' ELSE 'opec.' || (g / 4) || '@pec.it' END,
			CASE g % 4 WHEN 3 THEN '' ELSE 'orig' || (g / 4) || '@client.it' END,
			'orig' || (g / 4) || '@client.it',
			's' || (g / 4 % 1000) || '@pec.it', 's' || (g / 4 % 1000) || '@pec.it',
			ARRAY['r' || (g / 4 % 5000) || '@pec.it'], ARRAY['certificato'], 'subject ' || g,
			timestamptz '2020-01-01' + g * interval '1 second', g,
			timestamptz '2020-01-01' + g * interval '1 second'
		FROM generate_series(0, $1::bigint - 1) g`, rows)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
		INSERT INTO deliveries (msgid, recipient, pec_id, sender, state, accepted_at, updated_at)
		SELECT 'orig' || o || '@client.it', 'r' || (o % 5000) || '@pec.it', 'opec.' || o || '@pec.it',
			's' || (o % 1000) || '@pec.it', 'delivered', timestamptz '2020-01-01' + o * 4 * interval '1 second', now()
		FROM generate_series(0, $1::bigint / 4 - 1) o`, rows)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
		INSERT INTO message_recipients (recipient, received_at, sha256)
		SELECT recipients[1], received_at, sha256 FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
		INSERT INTO message_links (referrer_sha256, original_sha256, via)
		SELECT sha256(int8send(g)), sha256(int8send(g - g % 4 + 3)), 'msgid'
		FROM generate_series(0, $1::bigint - 1) g WHERE g % 4 <> 3`, rows)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `
		INSERT INTO delivery_events (msgid, recipient, receipt_sha256, kind, ok, event_time)
		SELECT 'orig' || (g / 4) || '@client.it', 'r' || (g / 4 % 5000) || '@pec.it', sha256(int8send(g)),
			(ARRAY['accettazione','avvenuta-consegna'])[g % 4 + 1], true, timestamptz '2020-01-01' + g * interval '1 second'
		FROM generate_series(0, $1::bigint - 1) g WHERE g % 4 < 2`, rows)
	if err != nil {
		t.Fatal(err)
	}
	// One source per message, and a further one with a leaf of its own for one in a hundred.
	_, err = pool.Exec(ctx, `
		INSERT INTO message_sources (sha256, mailbox, folder, uidvalidity, uid, first_seen, leaf_index)
		SELECT sha256, 'm', 'INBOX', 1, leaf_index, received_at, NULL FROM messages
		UNION ALL
		SELECT sha256, 'm', 'Archivio', 1, leaf_index, received_at, $1::bigint + leaf_index FROM messages WHERE leaf_index % 100 = 0`, rows)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d messages, %d links, %d delivery events and %d deliveries in %v", rows, rows*3/4, rows/2, rows/4,
		time.Since(start).Round(time.Millisecond))

	cat := catalog.New(pool)
	mid := rows / 2 / 4
	msgid := fmt.Sprintf("orig%d@client.it", mid)
	pecID := fmt.Sprintf("opec.%d@pec.it", mid)
	var someSum [32]byte
	{
		ms, err := cat.ByMsgID(ctx, msgid, 0)
		if err != nil || len(ms) != 4 {
			t.Fatalf("by msgid: %d, %v", len(ms), err)
		}
		someSum = ms[0].SHA256
	}
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rows/2) * time.Second)
	lookups := []struct {
		name string
		run  func() (int, error)
	}{
		{"Get", func() (int, error) { _, err := cat.Get(ctx, someSum); return 1, err }},
		{"ByMsgID", func() (int, error) { ms, err := cat.ByMsgID(ctx, msgid, 0); return len(ms), err }},
		{"ByPECID", func() (int, error) { ms, err := cat.ByPECID(ctx, pecID, 0); return len(ms), err }},
		{"Search sender+time", func() (int, error) {
			ms, err := cat.Search(ctx, catalog.Query{Sender: fmt.Sprintf("s%d@pec.it", mid%1000), Since: t0.Add(-24 * time.Hour), Until: t0.Add(24 * time.Hour)})
			return len(ms), err
		}},
		{"Search recipient", func() (int, error) {
			ms, err := cat.Search(ctx, catalog.Query{Recipient: fmt.Sprintf("r%d@pec.it", mid%5000), Limit: 10})
			return len(ms), err
		}},
		{"Search time range page", func() (int, error) {
			ms, err := cat.Search(ctx, catalog.Query{Since: t0, Until: t0.Add(time.Hour), Kinds: []pec.Kind{pec.KindAvvenutaConsegna}, Limit: 50})
			return len(ms), err
		}},
		{"Deliveries", func() (int, error) { ds, err := cat.Deliveries(ctx, msgid); return len(ds), err }},
		{"DeliveriesByPECID", func() (int, error) { ds, err := cat.DeliveriesByPECID(ctx, pecID); return len(ds), err }},
		{"SearchDeliveries sender+recipient+time", func() (int, error) {
			ds, err := cat.SearchDeliveries(ctx, catalog.DeliveryQuery{Sender: fmt.Sprintf("s%d@pec.it", mid%1000),
				Recipient: fmt.Sprintf("r%d@pec.it", mid%5000), Since: t0.Add(-30 * 24 * time.Hour), Until: t0.Add(30 * 24 * time.Hour)})
			return len(ds), err
		}},
		{"Links", func() (int, error) { ls, err := cat.Links(ctx, someSum); return len(ls), err }},
		{"Conversations sender+time", func() (int, error) {
			cs, err := cat.Conversations(ctx, catalog.ConversationQuery{Sender: fmt.Sprintf("s%d@pec.it", mid%1000),
				Since: t0.Add(-30 * 24 * time.Hour), Until: t0.Add(30 * 24 * time.Hour), Limit: 10})
			return len(cs), err
		}},
		{"Conversations recipient", func() (int, error) {
			cs, err := cat.Conversations(ctx, catalog.ConversationQuery{Recipient: fmt.Sprintf("r%d@pec.it", mid%5000), Limit: 10})
			return len(cs), err
		}},
		{"Search sender+subject", func() (int, error) {
			ms, err := cat.Search(ctx, catalog.Query{Sender: fmt.Sprintf("s%d@pec.it", mid%1000), SubjectWords: []string{"x"},
				Signature: catalog.SignatureTrusted, Limit: 10})
			return len(ms), err
		}},
	}
	check := func(name string) {
		t.Helper()
		for _, q := range rec.take() {
			if strings.HasPrefix(strings.TrimSpace(q.sql), "SELECT pg_advisory") {
				continue
			}
			var plan string
			if err := pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+q.sql, q.args...).Scan(&plan); err != nil {
				t.Fatalf("%s: explain: %v", name, err)
			}
			var v any
			json.Unmarshal([]byte(plan), &v)
			if s := bigEnough(t, ctx, pool, seqScans(v)); len(s) > 0 {
				t.Errorf("%s: sequential scan of %v in\n%s", name, s, q.sql)
			}
		}
	}
	for _, l := range lookups {
		rec.mu.Lock()
		rec.on = true
		rec.mu.Unlock()
		start := time.Now()
		n, err := l.run()
		d := time.Since(start)
		rec.mu.Lock()
		rec.on = false
		rec.mu.Unlock()
		if err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		t.Logf("%-40s %3d results in %v", l.name, n, d.Round(time.Microsecond))
		check(l.name)
	}

	// The audit's queries: a page of rows with their sources, of logged sources, the check of the
	// rows derived from a page, a walk of every table derived from the messages, certificate sets.
	audits := []struct {
		name string
		run  func() (int, error)
	}{
		{"AuditPage", func() (int, error) { p, err := catalog.AuditPage(ctx, pool, int64(rows/2), 500); return len(p), err }},
		{"LoggedSourcesPage", func() (int, error) {
			p, err := catalog.LoggedSourcesPage(ctx, pool, int64(rows+rows/2), 500)
			return len(p), err
		}},
		{"CheckDerived", func() (int, error) {
			p, err := catalog.AuditPage(ctx, pool, int64(rows/2), 500)
			if err != nil {
				return 0, err
			}
			ms := make([]catalog.Message, len(p))
			for i := range p {
				ms[i] = p[i].Message
			}
			rec.take()
			bad, err := catalog.CheckDerived(ctx, pool, ms)
			return len(bad), err
		}},
		{"CheckStoredRows", func() (int, error) {
			n := 0
			for _, table := range []string{catalog.TableRecipients, catalog.TableEvents, catalog.TableLinks, catalog.TableSources} {
				walked, err := catalog.CheckStoredRows(ctx, pool, table, func(catalog.Mismatch) error { return nil })
				if err != nil {
					return n, err
				}
				n += int(walked)
			}
			return n, nil
		}},
		{"CertSetsPage", func() (int, error) {
			p, err := catalog.CertSetsPage(ctx, pool, catalog.TableChains, nil, 500)
			return len(p), err
		}},
	}
	for _, l := range audits {
		rec.mu.Lock()
		rec.on = true
		rec.mu.Unlock()
		start := time.Now()
		n, err := l.run()
		d := time.Since(start)
		rec.mu.Lock()
		rec.on = false
		rec.mu.Unlock()
		if err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		t.Logf("%-40s %3d rows in %v", l.name, n, d.Round(time.Microsecond))
		// The walks run one statement per page: explain each statement once, with sequential
		// scans off as the audit runs them (an index must serve each).
		seen := map[string]bool{}
		for _, q := range rec.take() {
			if seen[q.sql] || strings.Contains(q.sql, "set_config('enable_seqscan'") {
				continue
			}
			seen[q.sql] = true
			var plan string
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
					return err
				}
				return tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+q.sql, q.args...).Scan(&plan)
			})
			if err != nil {
				t.Fatalf("%s: explain: %v", l.name, err)
			}
			var v any
			json.Unmarshal([]byte(plan), &v)
			if s := bigEnough(t, ctx, pool, seqScans(v)); len(s) > 0 {
				t.Errorf("%s: sequential scan of %v in\n%s", l.name, s, q.sql)
			}
		}
	}

	// The correlation queries of a commit: a batch of receipts and originals for existing msgids.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	b := &catalog.Batch{Now: time.Now()}
	for i := range 150 {
		id := fmt.Sprintf("orig%d@client.it", mid+i)
		m := receipt(pec.KindAvvenutaConsegna, id, fmt.Sprintf("opec.%d@pec.it", mid+i), []string{"x@pec.it"}, "x@pec.it", trusted, "scale")
		m.LeafIndex, m.ReceivedAt = uint64(rows+i), time.Now()
		b.Messages = append(b.Messages, m)
	}
	rec.mu.Lock()
	rec.on = true
	rec.mu.Unlock()
	start = time.Now()
	if err := catalog.Write(ctx, tx, b); err != nil {
		t.Fatal(err)
	}
	t.Logf("%-40s %3d messages in %v", "Write (with correlation)", len(b.Messages), time.Since(start).Round(time.Microsecond))
	rec.mu.Lock()
	rec.on = false
	rec.mu.Unlock()
	explained := 0
	for _, q := range rec.take() {
		// The look-ups, and the inserts that read the catalog (links, deliveries).
		if sql := strings.TrimSpace(q.sql); !strings.HasPrefix(sql, "SELECT") && !strings.HasPrefix(sql, "WITH") &&
			!strings.HasPrefix(sql, "INSERT") {
			continue
		}
		var plan string
		if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+q.sql, q.args...).Scan(&plan); err != nil {
			t.Fatalf("explain: %v", err)
		}
		var v any
		json.Unmarshal([]byte(plan), &v)
		if s := bigEnough(t, ctx, tx, seqScans(v)); len(s) > 0 {
			t.Errorf("write: sequential scan of %v in\n%s", s, q.sql)
		}
		explained++
	}
	// Messages, recipients, sources, delivery events, links, deliveries.
	if explained < 6 {
		t.Errorf("write: %d statements explained, want the 6 of a commit with correlation", explained)
	}
}
