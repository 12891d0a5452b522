package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/proof"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/procstat"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/services/query"
	"github.com/pecarchive/pecarchive/tlog"
)

func init() {
	benchmarks["query"] = benchQuery
}

// benchQuery fills a catalog with generated notices and their receipts, then measures
// ProveDelivery by msgid over gRPC with concurrent clients (each answer's read recorded as an
// access leaf through the archive) against the floor: the same look-ups as bare SQL on the same
// indexes from the same process. Its last line is "ratio: X.XX" (service rate / floor rate).
func benchQuery(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 1_000_000, "notices in the catalog, each with an acceptance and a delivery receipt (3 messages and 3 log leaves each)")
	conc := fs.Int("concurrency", 16, "concurrent gRPC clients (and goroutines of the floor)")
	duration := fs.Duration("duration", 30*time.Second, "measuring time of each side")
	rounds := fs.Int("rounds", 6, "rounds of floor and service, taking turns, so that drift of the machine weighs on both alike")
	warmup := fs.Duration("warmup", 10*time.Second, "unmeasured turns of both sides first, so that neither meets a cold cache")
	batch := fs.Int("fill-batch", 160, "notices per transaction while filling (3 messages each: the archive's committer writes at most 500 messages per transaction)")
	keep := fs.Bool("keep", false, "keep the PostgreSQL schema (its name is printed) to reuse with -schema")
	schema := fs.String("schema", "", "use this schema (one a previous -keep run filled with the same -n) instead of filling a new one")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the service's turns to this file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *n <= 0 || *conc <= 0 || *duration <= 0 || *rounds <= 0 || *batch <= 0 {
		fmt.Fprintln(stderr, "pecarchive bench query: -n, -concurrency, -duration, -rounds and -fill-batch must be positive")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := queryBenchConfig{N: *n, Concurrency: *conc, Duration: *duration, Rounds: *rounds, FillBatch: *batch, Keep: *keep, Schema: *schema,
		CPUProfile: *cpuprofile, Warmup: *warmup}
	if err := runQueryBench(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "pecarchive bench query: %v\n", err)
		return exitNotValid
	}
	return exitOK
}

type queryBenchConfig struct {
	N, Concurrency, Rounds, FillBatch int
	Duration, Warmup                  time.Duration
	Keep                              bool
	Schema, CPUProfile                string
}

// benchMsgID is the Message-ID of generated notice i.
func benchMsgID(i int) string { return fmt.Sprintf("avviso-%d@ordine.example.it", i) }

// benchNotice returns generated notice i and its acceptance and delivery receipt, as the
// archive catalogues them: valid, trusted provider signatures, one recipient.
func benchNotice(i int, received time.Time) [3]catalog.Message {
	msgid := benchMsgID(i)
	sender := fmt.Sprintf("segreteria-%d@pec.ordine.example.it", i%97)
	rcpt := fmt.Sprintf("iscritto-%d@pec.esempio.it", i)
	pecID := fmt.Sprintf("opec.%d.bench@pec.example.it", i)
	subject := fmt.Sprintf("Avviso n. %d", i)
	sent := time.Date(2026, 1, 1, 9, 0, 0, 0, time.FixedZone("+0100", 3600)).Add(time.Duration(i) * time.Second)
	sig := func(at time.Time) catalog.Verdict {
		return catalog.Verdict{Present: true, Valid: true, Trusted: true, Digest: "sha1",
			Signer: "CN=Gestore PEC di prova,O=Gestore S.p.A.,C=IT", SignerEmail: "posta-certificata@pec.example.it",
			SignedAt: at, VerifiedAt: at, Reasons: []string{"weak-digest-sha1"}}
	}
	sum := func(kind string) [32]byte { return sha256.Sum256(fmt.Appendf(nil, "bench %s %d", kind, i)) }
	orig := catalog.Message{SHA256: sum("original"), Size: 4096, Kind: pec.KindNotPEC, MessageID: msgid, Sender: sender, From: sender,
		Recipients: []string{rcpt}, RecipientTypes: []string{""}, Subject: subject, HeaderDate: sent, ReceivedAt: received}
	acc := catalog.Message{SHA256: sum("acceptance"), Size: 9000, Kind: pec.KindAccettazione, MessageID: "acc-" + pecID,
		PECID: pecID, OrigMsgID: msgid, XRiferimento: msgid, Sender: sender, From: "posta-certificata@pec.example.it",
		Recipients: []string{rcpt}, RecipientTypes: []string{"certificato"}, Subject: "ACCETTAZIONE: " + subject,
		Provider: "Gestore S.p.A.", DaticertTime: sent.Add(time.Second), Verdict: sig(sent.Add(time.Second)), ReceivedAt: received}
	del := catalog.Message{SHA256: sum("delivery"), Size: 12000, Kind: pec.KindAvvenutaConsegna, MessageID: "del-" + pecID,
		PECID: pecID, OrigMsgID: msgid, XRiferimento: msgid, Sender: sender, From: "posta-certificata@pec.esempio.it",
		Recipients: []string{rcpt}, RecipientTypes: []string{"certificato"}, Subject: "CONSEGNA: " + subject,
		Provider: "Esempio S.p.A.", Consegna: rcpt, ReceiptType: pec.ReceiptCompleta, DaticertTime: sent.Add(4 * time.Second),
		Verdict: sig(sent.Add(4 * time.Second)), ReceivedAt: received}
	return [3]catalog.Message{orig, acc, del}
}

// fillBench writes notices [from, to) with their receipts through the archive's write code, as
// its committer writes a batch: in one transaction, the catalog's writer lock and the log's
// sequencer lock, the leaves (each committing to its row's evidence digest), then the catalog
// rows with the links, delivery events and delivery states the server derives (catalog.Write).
// Only the parsing, the verification and the blob store are left out: ProveDelivery reads none
// of them.
func fillBench(ctx context.Context, pool *pgxpool.Pool, log *merklelog.Log, from, to int) error {
	received := time.Now().UTC().Truncate(time.Microsecond)
	msgs := make([]catalog.Message, 0, 3*(to-from))
	for i := from; i < to; i++ {
		n := benchNotice(i, received)
		msgs = append(msgs, n[:]...)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	var lock pgx.Batch
	catalog.QueueLock(&lock)
	ap := log.QueueLock(&lock)
	if err := tx.SendBatch(ctx, &lock).Close(); err != nil {
		return err
	}
	leaves := make([][]byte, len(msgs))
	for i := range msgs {
		msgs[i].Normalize()
		leaves[i] = tlog.Leaf{Kind: tlog.KindMessage, SHA256: msgs[i].SHA256, Time: received, Extra: msgs[i].LeafExtra()}.Marshal()
	}
	var app pgx.Batch
	first, err := ap.QueueAppend(&app, leaves)
	if err != nil {
		return err
	}
	for i := range msgs {
		msgs[i].LeafIndex = first + uint64(i)
	}
	if err := catalog.Write(ctx, tx, &catalog.Batch{Messages: msgs, Before: app.QueuedQueries, Now: received}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func runQueryBench(ctx context.Context, cfg queryBenchConfig, out io.Writer) error {
	s, err := loadSettings("")
	if err != nil {
		return err
	}
	if s.get("PECARCHIVE_PG_DSN", "") == "" {
		s["PECARCHIVE_PG_DSN"] = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	fill := cfg.Schema == ""
	if fill {
		cfg.Schema = fmt.Sprintf("bench_query_%d", time.Now().UnixNano())
	}
	s["PECARCHIVE_PG_SCHEMA"] = cfg.Schema
	pool, err := s.openPool(ctx)
	if err != nil {
		return err
	}
	// The bench's connections carry an application name of their own, so that the CPU of
	// their server processes can be told from that of the machine's other PostgreSQL work.
	pcfg := pool.Config().Copy()
	pool.Close()
	pcfg.ConnConfig.RuntimeParams["application_name"] = benchAppName
	if pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return err
	}
	pgOwn := func() time.Duration { return pgBackendsCPU(ctx, pool) }
	defer func() {
		if cfg.Keep {
			fmt.Fprintf(out, "postgres: schema %s kept (reuse it with -schema %s -n %d)\n", cfg.Schema, cfg.Schema, cfg.N)
		} else if fill {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{cfg.Schema}.Sanitize()+" CASCADE")
		}
		pool.Close()
	}()
	if err := archive.Migrate(ctx, pool); err != nil {
		return err
	}
	// The log's key and its write-once checkpoints (and the empty blob store) live in a folder
	// named after the schema, kept with it: a kept schema's checkpoints are signed by that key.
	dir := filepath.Join(os.TempDir(), "pecarchive-"+cfg.Schema)
	if fill {
		defer func() {
			if !cfg.Keep {
				os.RemoveAll(dir)
			}
		}()
	}
	skey, err := benchQueryKey(dir, fill)
	if err != nil {
		return err
	}
	blobs, err := fsstore.New(ctx, fsstore.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		return err
	}
	l, _, err := openLogWithKey(ctx, pool, blobs, skey, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "postgres: schema %s, log key and checkpoints in %s\n", cfg.Schema, dir)

	if fill {
		t0 := time.Now()
		var next atomic.Int64
		// Two writers: while one transaction waits for the server the other builds its batch.
		// They serialize on the log's sequencer lock, as replicas of the archive do.
		err := parallelErr(2, func() error {
			for {
				lo := int(next.Add(int64(cfg.FillBatch))) - cfg.FillBatch
				if lo >= cfg.N || ctx.Err() != nil {
					return ctx.Err()
				}
				if err := fillBench(ctx, pool, l, lo, min(lo+cfg.FillBatch, cfg.N)); err != nil {
					return err
				}
				if done := lo + cfg.FillBatch; done%(cfg.FillBatch*50) == 0 {
					fmt.Fprintf(out, "fill: %d notices in %s\n", done, time.Since(t0).Round(time.Second))
				}
			}
		})
		if err != nil {
			return fmt.Errorf("fill: %w", err)
		}
		d := time.Since(t0)
		fmt.Fprintf(out, "fill: %d notices, %d messages and log leaves, in %s (%.0f messages/s) through catalog.Write and the log's appender, %d notices per transaction\n",
			cfg.N, 3*cfg.N, d.Round(time.Second), float64(3*cfg.N)/d.Seconds(), cfg.FillBatch)
		if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
			return err
		}
	} else {
		var have int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&have); err != nil || have < 3*cfg.N {
			return fmt.Errorf("schema %s holds %d messages, not the %d of -n %d (%v)", cfg.Schema, have, 3*cfg.N, cfg.N, err)
		}
		fmt.Fprintf(out, "fill: reusing the %d notices of schema %s\n", cfg.N, cfg.Schema)
	}
	if _, err := l.Publish(ctx); err != nil {
		return err
	}

	// The writer records every read; the service reads as pecarchive_query, read-only.
	a, err := archive.New(ctx, archive.Config{Pool: pool, Blobs: blobs, Log: l, NoMigrate: true})
	if err != nil {
		return err
	}
	defer a.Close(context.Background())
	rcfg := pool.Config().Copy()
	rcfg.ConnConfig.RuntimeParams["role"] = "pecarchive_query"
	rcfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	rcfg.MaxConns = int32(max(4, cfg.Concurrency))
	roPool, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		return err
	}
	defer roPool.Close()
	rd, err := reader.New(ctx, reader.Config{Pool: roPool, Blobs: blobs})
	if err != nil {
		return err
	}
	svc, err := query.New(ctx, query.Config{Reader: rd, Recorder: a})
	if err != nil {
		return err
	}
	token, hash, err := auth.GenerateToken()
	if err != nil {
		return err
	}
	creds, err := auth.ParseCredentials([]byte("token " + hash + " bench service\n"))
	if err != nil {
		return err
	}
	authz, err := auth.NewAuthorizer(creds, query.DefaultPolicy(), &auth.Options{Public: query.PublicMethods()})
	if err != nil {
		return err
	}
	srv, err := query.NewServer(query.ServerConfig{Service: svc, Authorizer: authz})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(lis)
	defer srv.Stop()
	clients := make([]querypb.EvidenceServiceClient, cfg.Concurrency)
	for i := range clients {
		cc, c, err := query.Dial(lis.Addr().String(), query.DialOptions{Token: token})
		if err != nil {
			return err
		}
		defer cc.Close()
		clients[i] = c
	}
	// Every client checks one answer before the clock starts: DELIVERED, with a proof.
	for i, c := range clients {
		resp, err := c.ProveDelivery(ctx, &querypb.ProveDeliveryRequest{Selector: &querypb.ProveDeliveryRequest_Msgid{Msgid: benchMsgID(i % cfg.N)}})
		if err != nil {
			return fmt.Errorf("first answer: %w", err)
		}
		if ms := resp.GetMessages(); len(ms) != 1 || ms[0].GetRecipients()[0].GetVerdict() != querypb.Verdict_VERDICT_DELIVERED ||
			len(ms[0].GetRecipients()[0].GetReceipts()[1].GetInclusionProof()) == 0 {
			return fmt.Errorf("first answer is not DELIVERED with a proof: %v", resp)
		}
	}

	service := func(ctx context.Context, rng *rand.Rand, c int) error {
		resp, err := clients[c].ProveDelivery(ctx, &querypb.ProveDeliveryRequest{Selector: &querypb.ProveDeliveryRequest_Msgid{Msgid: benchMsgID(rng.IntN(cfg.N))}})
		if err == nil && len(resp.GetMessages()) != 1 {
			err = errors.New("no message in the answer")
		}
		return err
	}
	fq := &floorQueries{pool: roPool, ttl: query.DefaultCheckpointTTL}
	floor := func(ctx context.Context, rng *rand.Rand, _ int) error {
		return fq.lookups(ctx, benchMsgID(rng.IntN(cfg.N)))
	}
	if cfg.Warmup > 0 {
		var w benchSide
		if err := w.run(ctx, cfg.Concurrency, cfg.Warmup/2, floor, pgOwn); err != nil {
			return err
		}
		if err := w.run(ctx, cfg.Concurrency, cfg.Warmup/2, service, pgOwn); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "measuring: %d rounds of %s per side after %s of warm-up, %d concurrent callers, msgids drawn at random from %d notices\n",
		cfg.Rounds, (cfg.Duration / time.Duration(cfg.Rounds)).Round(time.Millisecond), cfg.Warmup, cfg.Concurrency, cfg.N)
	st0 := a.Stats()
	var fl, sv benchSide
	slice := cfg.Duration / time.Duration(cfg.Rounds)
	var prof *os.File
	if cfg.CPUProfile != "" {
		if prof, err = os.Create(cfg.CPUProfile); err != nil {
			return err
		}
		defer prof.Close()
	}
	runService := func() error {
		if prof != nil {
			if err := pprof.StartCPUProfile(prof); err == nil {
				defer pprof.StopCPUProfile()
				defer func() { prof = nil }()
			}
		}
		return sv.run(ctx, cfg.Concurrency, slice, service, pgOwn)
	}
	for r := range cfg.Rounds {
		first, second := func() error { return fl.run(ctx, cfg.Concurrency, slice, floor, pgOwn) }, runService
		if r%2 == 1 {
			first, second = second, first
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
	}
	st := a.Stats()
	accesses, batches := st.Accesses-st0.Accesses, st.Batches-st0.Batches
	fmt.Fprintf(out, "floor: the same look-ups as bare SQL (the notice's messages by msgid, the proof nodes of its receipts, the latest checkpoint once a second as the service), %d goroutines: %.0f/s, p50 %s, p99 %s\n",
		cfg.Concurrency, fl.rate(), fl.pct(50), fl.pct(99))
	fmt.Fprintf(out, "service: ProveDelivery by msgid over gRPC (token auth, verdict, proofs, access leaf), %d clients: %.0f proofs/s, p50 %s, p99 %s, %d errors (targets: p99 < 10ms, >= 2000/s)\n",
		cfg.Concurrency, sv.rate(), sv.pct(50), sv.pct(99), sv.errors.Load())
	perTx := func(d time.Duration) string {
		return (d / time.Duration(max(batches, 1))).Round(10 * time.Microsecond).String()
	}
	fmt.Fprintf(out, "access leaves: %d recorded during the service's turns (one per answer) in %d transactions of the archive's group commit, %.1f each, collected in %s and committed in %s on average\n",
		accesses, batches, float64(accesses)/float64(max(batches, 1)), perTx(st.Collect-st0.Collect), perTx(st.Transact-st0.Transact))
	per := func(d time.Duration, n int64) string {
		return (d / time.Duration(max(n, 1))).Round(time.Microsecond).String()
	}
	fmt.Fprintf(out, "cpu per answer: floor: this process %s, PostgreSQL %s (its own connections' server processes %s); service: this process %s (gRPC both ends, service, archive), PostgreSQL %s (its own connections' %s); PostgreSQL is all postgres processes of this machine, others' work included\n",
		per(fl.self, fl.ops.Load()), per(fl.pg, fl.ops.Load()), per(fl.pgOwn, fl.ops.Load()),
		per(sv.self, sv.ops.Load()), per(sv.pg, sv.ops.Load()), per(sv.pgOwn, sv.ops.Load()))
	if fl.machine.Total() > 0 && sv.machine.Total() > 0 {
		pct := func(m procstat.Machine) float64 { return 100 * float64(m.Busy) / float64(m.Total()) }
		fmt.Fprintf(out, "machine (%d CPUs): busy %.0f%% during the floor, %.0f%% during the service; busy CPU per answer %s vs %s\n",
			runtime.NumCPU(), pct(fl.machine), pct(sv.machine), per(fl.machine.Busy, fl.ops.Load()), per(sv.machine.Busy, sv.ops.Load()))
	}
	fmt.Fprintf(out, "ratio: %.2f\n", sv.rate()/fl.rate())
	return nil
}

// benchSide accumulates one side's measurements over its rounds.
type benchSide struct {
	mu             sync.Mutex
	lat            []time.Duration
	elapsed        time.Duration
	ops, errors    atomic.Int64
	self, pg       time.Duration
	pgOwn          time.Duration // the CPU of the server processes of the bench's own connections
	machine        procstat.Machine
	firstErrLogged atomic.Bool
}

// run calls op from conc goroutines for d, timing each call; pgOwn returns the CPU time used so
// far by the server processes of the bench's own connections.
func (b *benchSide) run(ctx context.Context, conc int, d time.Duration, op func(ctx context.Context, rng *rand.Rand, worker int) error,
	pgOwn func() time.Duration) error {
	self0, pg0, own0 := procCPU(os.Getpid()), pgCPU(), pgOwn()
	m0, _ := procstat.ReadMachine()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	var fatal atomic.Value
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			lat := make([]time.Duration, 0, 4096)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx, rng, w)
				lat = append(lat, time.Since(t0))
				b.ops.Add(1)
				if err != nil {
					if b.errors.Add(1) > 100 {
						fatal.Store(fmt.Errorf("more than 100 errors, the last: %w", err))
						return
					}
				}
			}
			b.mu.Lock()
			b.lat = append(b.lat, lat...)
			b.mu.Unlock()
		}()
	}
	wg.Wait()
	b.elapsed += time.Since(start)
	m1, _ := procstat.ReadMachine()
	b.self += procCPU(os.Getpid()) - self0
	b.pg += pgCPU() - pg0
	b.pgOwn += pgOwn() - own0
	b.machine = b.machine.Add(m1.Sub(m0))
	if err, _ := fatal.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

func (b *benchSide) rate() float64 { return float64(b.ops.Load()) / b.elapsed.Seconds() }

func (b *benchSide) pct(p int) time.Duration {
	if len(b.lat) == 0 {
		return 0
	}
	slices.Sort(b.lat)
	return b.lat[min(len(b.lat)-1, len(b.lat)*p/100)].Round(10 * time.Microsecond)
}

// The floor's statements: the ones the reader sends for an answer (catalog.ByMsgID,
// merklelog.Log.Checkpoint, merklelog.Log.InclusionProofs), with every column.
const (
	floorMessagesSQL = `SELECT * FROM messages WHERE message_id <> '' AND message_id = $1
	UNION ALL SELECT * FROM messages WHERE ref_msgid <> '' AND ref_msgid = $1 AND message_id <> $1
	ORDER BY received_at, sha256 LIMIT $2`
	floorCheckpointSQL = `SELECT signed FROM merklelog_checkpoint ORDER BY size DESC LIMIT 1`
	floorNodesSQL      = `
		SELECT 0::smallint, idx, hash FROM merklelog_leaf WHERE idx = ANY($1::bigint[])
		UNION ALL
		SELECT n.level, n.idx, n.hash FROM merklelog_node n
			JOIN unnest($2::smallint[], $3::bigint[]) AS q(level, idx)
			ON n.level = q.level AND n.idx = q.idx`
)

// floorQueries makes the look-ups of an answer as bare SQL.
type floorQueries struct {
	pool *pgxpool.Pool
	ttl  time.Duration
	mu   sync.Mutex
	size uint64 // the latest checkpoint's, read again after ttl as the service does
	at   time.Time
}

// checkpointSize returns the latest checkpoint's size, reading it when the last read is older
// than the service's Config.CheckpointTTL.
func (f *floorQueries) checkpointSize(ctx context.Context) (uint64, error) {
	f.mu.Lock()
	size, at := f.size, f.at
	f.mu.Unlock()
	if !at.IsZero() && time.Since(at) < f.ttl {
		return size, nil
	}
	now := time.Now()
	var signed []byte
	if err := f.pool.QueryRow(ctx, floorCheckpointSQL).Scan(&signed); err != nil {
		return 0, err
	}
	cp, err := tlog.ParseCheckpoint(signed)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.size, f.at = cp.Size, now
	f.mu.Unlock()
	return cp.Size, nil
}

// lookups makes the look-ups of one answer: the latest checkpoint (as often as the service
// reads it), the notice's messages (every column, read raw: only the kind and leaf index are
// decoded), and the stored nodes of its receipts' inclusion proofs.
func (f *floorQueries) lookups(ctx context.Context, msgid string) error {
	pool := f.pool
	size, err := f.checkpointSize(ctx)
	if err != nil {
		return err
	}
	rows, err := pool.Query(ctx, floorMessagesSQL, msgid, catalog.MaxLimit)
	if err != nil {
		return err
	}
	kindCol, leafCol := -1, -1
	for i, f := range rows.FieldDescriptions() {
		switch f.Name {
		case "kind":
			kindCol = i
		case "leaf_index":
			leafCol = i
		}
	}
	var receipts []uint64
	for rows.Next() {
		raw := rows.RawValues()
		if kindCol >= 0 && leafCol >= 0 && len(raw[leafCol]) == 8 && pec.Kind(raw[kindCol]).IsReceipt() {
			receipts = append(receipts, binary.BigEndian.Uint64(raw[leafCol]))
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	leafIdx, lvl, idx := []int64{}, []int16{}, []int64{}
	for _, r := range receipts {
		if r >= size {
			continue
		}
		nodes, err := proof.Inclusion(r, size)
		if err != nil {
			return err
		}
		leafIdx = append(leafIdx, int64(r))
		for _, id := range nodes.IDs {
			if id.Level == 0 {
				leafIdx = append(leafIdx, int64(id.Index))
			} else {
				lvl, idx = append(lvl, int16(id.Level)), append(idx, int64(id.Index))
			}
		}
	}
	rows, err = pool.Query(ctx, floorNodesSQL, leafIdx, lvl, idx)
	if err != nil {
		return err
	}
	got := 0
	for rows.Next() {
		got++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if got == 0 {
		return errors.New("floor: no proof nodes")
	}
	return nil
}

// benchQueryKey returns the log's signing key kept in dir: a new one written there when fill,
// else the one a filling run wrote.
func benchQueryKey(dir string, fill bool) (string, error) {
	keyFile := filepath.Join(dir, "log.key")
	if !fill {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return "", fmt.Errorf("the log key of the kept schema: %w", err)
		}
		return string(b), nil
	}
	skey, _, err := tlog.GenerateKey("bench.pecarchive.local/log")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return skey, writeSecretFile(keyFile, []byte(skey+"\n"))
}

// benchAppName is the application_name of the bench's PostgreSQL connections.
const benchAppName = "pecarchive-bench-query"

// pgBackendsCPU returns the CPU time used so far by the server processes of the connections
// named benchAppName (0 where it cannot be read). One that ended since an earlier call drops
// out of the sum, one that started since counts whole: the pools keep their connections, so
// there are few of either.
func pgBackendsCPU(ctx context.Context, pool *pgxpool.Pool) time.Duration {
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, benchAppName)
	if err != nil {
		return 0
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0
	}
	var total time.Duration
	for _, pid := range pids {
		total += procCPU(int(pid))
	}
	return total
}

// parallelErr runs fn in n goroutines and returns the first error.
func parallelErr(n int, fn func() error) error {
	errc := make(chan error, n)
	for range n {
		go func() { errc <- fn() }()
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}
