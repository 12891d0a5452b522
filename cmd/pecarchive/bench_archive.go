package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/procstat"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

func init() {
	benchmarks["archive"] = benchArchive
}

// benchArchive stores N generated receipts through the gRPC Store into S3 + PostgreSQL and, in the
// same run against the same servers with the same concurrency, measures two floors: plain PUTs of
// the same objects with the same checksum and retention headers; and those PUTs each followed by
// one minimal catalog row (SHA-256, key, size) committed in PostgreSQL transactions of the
// archive's size, the least work any archive with a catalog must do. It prints the ratio against
// both; its last line is "ratio: X.XX" (pipeline rate / the second floor's rate).
func benchArchive(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 20000, "receipts to store")
	conc := fs.Int("concurrency", 32, "concurrent Store calls (and concurrent PUTs for the floor)")
	unique := fs.Int("unique", 0, "distinct signed receipts to generate (0: all N distinct); fewer are stored several times with distinct Received headers")
	endpoint := fs.String("s3-endpoint", "", "S3 endpoint host:port (keys from $PECARCHIVE_S3_ACCESS_KEY / $PECARCHIVE_S3_SECRET_KEY); default: start a throw-away versitygw with scripts/s3-server.sh")
	server := fs.String("s3-server", "versitygw", "throw-away server to start when no endpoint is given: versitygw or minio")
	retention := fs.Duration("retention", 24*time.Hour, "COMPLIANCE retention of the benchmark's objects (kept short: they cannot be deleted before it ends)")
	proofs := fs.Int("proofs", 2000, "inclusion proofs to time at the final tree size")
	keep := fs.Bool("keep", false, "keep the PostgreSQL schema and the S3 server's data")
	batchDelay := fs.Duration("batch-delay", 0, "the archive's group-commit delay (0: its default; negative: never wait)")
	rounds := fs.Int("rounds", 4, "rounds of floor and pipeline, taking turns on slices of the workload, so that drift of the machine weighs on both alike")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the pipeline's first round to this file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *unique == 0 {
		*unique = *n
	}
	if *n <= 0 || *conc <= 0 || *unique <= 0 || *rounds <= 0 || *rounds > *n {
		fmt.Fprintln(stderr, "pecarchive bench archive: -n, -concurrency and -rounds (at most -n) must be positive, -unique not negative")
		return exitUsage
	}
	// Interrupted, the run stops where it is and still cleans up: it stops its throw-away S3
	// server and drops its PostgreSQL schema.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runArchiveBench(ctx, archiveBenchConfig{
		N: *n, Concurrency: *conc, Unique: *unique, Endpoint: *endpoint, Server: *server,
		Retention: *retention, Proofs: *proofs, Keep: *keep, CPUProfile: *cpuprofile, Rounds: *rounds, BatchDelay: *batchDelay,
	}, stdout); err != nil {
		fmt.Fprintf(stderr, "pecarchive bench archive: %v\n", err)
		return exitNotValid
	}
	return exitOK
}

type archiveBenchConfig struct {
	N, Concurrency, Unique int
	Endpoint, Server       string
	AccessKey, SecretKey   string
	Retention              time.Duration
	Proofs                 int
	Keep                   bool
	PGDSN                  string
	CPUProfile             string
	Rounds                 int
	BatchDelay             time.Duration
	serverPID              int
}

func runArchiveBench(ctx context.Context, cfg archiveBenchConfig, out io.Writer) error {
	s, err := loadSettings("")
	if err != nil {
		return err
	}
	if cfg.Endpoint == "" {
		srv, err := startS3Server(cfg.Server, cfg.Keep)
		if err != nil {
			return err
		}
		defer srv.stop()
		cfg.Endpoint, cfg.AccessKey, cfg.SecretKey, cfg.serverPID = srv.endpoint, srv.access, srv.secret, srv.pid
		fmt.Fprintf(out, "s3: throw-away %s at %s (data in %s)\n", cfg.Server, srv.endpoint, srv.dir)
	} else {
		cfg.AccessKey, cfg.SecretKey = s.get("PECARCHIVE_S3_ACCESS_KEY", ""), s.get("PECARCHIVE_S3_SECRET_KEY", "")
		fmt.Fprintf(out, "s3: %s\n", cfg.Endpoint)
	}
	stamp := fmt.Sprintf("%d", time.Now().UnixNano())
	schema := "bench_" + stamp
	s["PECARCHIVE_PG_SCHEMA"] = schema
	if cfg.PGDSN != "" {
		s["PECARCHIVE_PG_DSN"] = cfg.PGDSN
	} else if s.get("PECARCHIVE_PG_DSN", "") == "" {
		s["PECARCHIVE_PG_DSN"] = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	pool, err := s.openPool(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if !cfg.Keep {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		}
		pool.Close()
	}()
	fmt.Fprintf(out, "postgres: schema %s\n", schema)

	// The workload: distinct signed receipts of 8-12 KB, each copy made unique by a Received
	// header outside the signed entity (as each delivery to a mailbox adds one).
	t0 := time.Now()
	msgs, err := benchMessages(cfg.N, cfg.Unique)
	if err != nil {
		return err
	}
	minSize, maxSize, total := len(msgs[0]), 0, 0
	for _, m := range msgs {
		minSize, maxSize, total = min(minSize, len(m)), max(maxSize, len(m)), total+len(m)
	}
	fmt.Fprintf(out, "workload: %d receipts (%d distinct signed ones), %d-%d bytes, mean %d, generated in %s\n",
		len(msgs), cfg.Unique, minSize, maxSize, total/len(msgs), time.Since(t0).Round(time.Millisecond))

	// Floor: plain PUTs of the same objects, same headers, same concurrency, into a bucket of
	// their own. Floor with catalog: the same PUTs into a third bucket, each followed by one
	// minimal catalog row committed in transactions of the archive's mean size so far. Pipeline:
	// gRPC Store -> archive (parse, verify, S3 put, PostgreSQL catalog + log leaf). The three take
	// turns on slices of the workload, each first in a round in turn (the pipeline in the first,
	// so that the archive's transaction size is known), so that drift of the server or the
	// machine during the run weighs on all sides alike.
	floor, err := newFloor(ctx, cfg, "bench-floor-"+stamp)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	catFloor, err := newCatalogFloor(ctx, cfg, pool, "bench-floorcat-"+stamp)
	if err != nil {
		return fmt.Errorf("floor with catalog: %w", err)
	}
	pipe, err := newPipeline(ctx, cfg, s, pool, "bench-archive-"+stamp)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	defer pipe.close()
	type side struct {
		elapsed, server, self, pg time.Duration
		machine                   procstat.Machine
	}
	var fl, cl, pl side
	measure := func(sd *side, fn func() (time.Duration, error)) (time.Duration, error) {
		cpu0, self0, pg0 := procCPU(cfg.serverPID), procCPU(os.Getpid()), pgCPU()
		m0, _ := procstat.ReadMachine()
		d, err := fn()
		m1, _ := procstat.ReadMachine()
		sd.elapsed += d
		sd.server += procCPU(cfg.serverPID) - cpu0
		sd.self += procCPU(os.Getpid()) - self0
		sd.pg += pgCPU() - pg0
		sd.machine = sd.machine.Add(m1.Sub(m0))
		return d, err
	}
	for r := range cfg.Rounds {
		lo, hi := r*len(msgs)/cfg.Rounds, (r+1)*len(msgs)/cfg.Rounds
		slice := msgs[lo:hi]
		runFloor := func() (time.Duration, error) {
			return measure(&fl, func() (time.Duration, error) { return floor.put(ctx, slice) })
		}
		runPipe := func() (time.Duration, error) {
			return measure(&pl, func() (time.Duration, error) { return pipe.store(ctx, slice, lo, r == 0) })
		}
		runCatalog := func() (time.Duration, error) {
			return measure(&cl, func() (time.Duration, error) { return catFloor.run(ctx, slice, pipe.batchSize()) })
		}
		sides := []func() (time.Duration, error){runPipe, runFloor, runCatalog}
		for i := range sides {
			if _, err := sides[(i+r)%len(sides)](); err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
		}
	}
	l, err := pipe.finish(ctx, len(msgs), out)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	floorRate := float64(len(msgs)) / fl.elapsed.Seconds()
	catRate := float64(len(msgs)) / cl.elapsed.Seconds()
	rate := float64(len(msgs)) / pl.elapsed.Seconds()
	fmt.Fprintf(out, "floor: %.0f PUTs/s (%d objects in %d rounds, concurrency %d, SHA-256 checksum + COMPLIANCE retention, conditional)\n",
		floorRate, len(msgs), cfg.Rounds, cfg.Concurrency)
	fmt.Fprintf(out, "floor with catalog: %.0f receipts/s (the same PUTs, each then one row (SHA-256, key, size) committed in %d transactions of %.1f rows, %s each: the archive's size)\n",
		catRate, catFloor.txs, float64(len(msgs))/float64(max(catFloor.txs, 1)), (catFloor.commit / time.Duration(max(catFloor.txs, 1))).Round(10*time.Microsecond))
	fmt.Fprintf(out, "pipeline: %.0f receipts/s through gRPC Store into S3 + PostgreSQL (concurrency %d; target ≥1000/s)\n", rate, cfg.Concurrency)
	if cfg.serverPID > 0 {
		per := func(d time.Duration) string { return (d / time.Duration(len(msgs))).Round(time.Microsecond).String() }
		fmt.Fprintf(out, "cpu per message: floor: S3 server %s, client %s, PostgreSQL %s; floor with catalog: S3 server %s, client %s, PostgreSQL %s; pipeline: S3 server %s, pecarchive %s, PostgreSQL %s (all postgres processes of this machine)\n",
			per(fl.server), per(fl.self), per(fl.pg), per(cl.server), per(cl.self), per(cl.pg), per(pl.server), per(pl.self), per(pl.pg))
	}
	// How busy the machine was: a side that kept every CPU busy is bound by CPU, and then the
	// ratio is the ratio of the machine's CPU time per message; one that left CPUs idle waited
	// on something else (latency, locks, the disk).
	if fl.machine.Total() > 0 && cl.machine.Total() > 0 && pl.machine.Total() > 0 {
		pct := func(d time.Duration, m procstat.Machine) float64 { return 100 * float64(d) / float64(m.Total()) }
		per := func(m procstat.Machine) time.Duration {
			return (m.Busy / time.Duration(len(msgs))).Round(time.Microsecond)
		}
		fmt.Fprintf(out, "machine (%d CPUs): busy %.0f%% during the floor, %.0f%% during the floor with catalog, %.0f%% during the pipeline (steal %.0f%%, %.0f%%, %.0f%%); busy CPU per message %s, %s, %s: ratio if all were CPU-bound %.2f against the floor, %.2f against the floor with catalog\n",
			runtime.NumCPU(), pct(fl.machine.Busy, fl.machine), pct(cl.machine.Busy, cl.machine), pct(pl.machine.Busy, pl.machine),
			pct(fl.machine.Steal, fl.machine), pct(cl.machine.Steal, cl.machine), pct(pl.machine.Steal, pl.machine),
			per(fl.machine), per(cl.machine), per(pl.machine),
			float64(fl.machine.Busy)/float64(pl.machine.Busy), float64(cl.machine.Busy)/float64(pl.machine.Busy))
	}

	if cfg.Proofs > 0 {
		p50, p99, size, err := benchProofs(ctx, l, cfg.Proofs)
		if err != nil {
			return fmt.Errorf("proofs: %w", err)
		}
		fmt.Fprintf(out, "inclusion proofs at tree size %d: p50 %s, p99 %s over %d proofs (target p99 < 5ms)\n",
			size, p50.Round(time.Microsecond), p99.Round(time.Microsecond), cfg.Proofs)
	}
	fmt.Fprintf(out, "ratio against the floor of bare PUTs: %.2f\n", rate/floorRate)
	fmt.Fprintf(out, "ratio against the floor with catalog: %.2f (target ≥0.70)\n", rate/catRate)
	fmt.Fprintf(out, "ratio: %.2f\n", rate/catRate)
	return nil
}

// benchMessages returns n receipts built from `unique` distinct signed ones.
func benchMessages(n, unique int) ([][]byte, error) {
	unique = min(unique, n)
	p, err := pectest.NewProvider(7, nil)
	if err != nil {
		return nil, err
	}
	peer, err := p.Peer(nil)
	if err != nil {
		return nil, err
	}
	base := make([][]byte, unique)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range base {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := p.Original(&pectest.Original{
				Subject: fmt.Sprintf("Convocazione assemblea n. %d", i),
				Attachments: []pectest.Attachment{{Name: "convocazione.pdf", ContentType: "application/pdf",
					Data: p.FileData(16+i%256, fmt.Sprint("bench", i))}},
			})
			if err != nil {
				firstErr.Store(err)
				return
			}
			var g *pectest.Generated
			switch i % 4 {
			case 0:
				g, err = p.Acceptance(pectest.Params{Original: o})
			case 1, 2:
				g, err = peer.Delivery(pectest.Params{Original: o, ReceiptType: []pec.ReceiptType{"", pec.ReceiptSintetica, pec.ReceiptCompleta}[i%4]})
			default:
				g, err = peer.NonDelivery(pectest.Params{Original: o})
			}
			if err != nil {
				firstErr.Store(err)
				return
			}
			base[i] = g.Bytes
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	msgs := make([][]byte, n)
	for i := range msgs {
		hdr := fmt.Sprintf("Received: from mx.pec.esempio.it by imap.archivio.invalid (pecarchive bench) id %08d;\r\n\tWed, 25 Nov 2026 10:00:00 +0100\r\n", i)
		msgs[i] = append([]byte(hdr), base[i%unique]...)
	}
	return msgs, nil
}

func parallel(n, conc int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errc <- err
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// floorRunner PUTs objects into a bucket of its own with plain minio-go calls.
type floorRunner struct {
	c           *minio.Core
	bucket      string
	concurrency int
	retention   time.Duration
}

func newFloor(ctx context.Context, cfg archiveBenchConfig, bucket string) (*floorRunner, error) {
	// The same connection pool as the archive's store: up to 256 idle connections (minio-go's
	// default keeps 16, which at a concurrency of 32 redialled about 1 connection in 80 PUTs).
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		return nil, err
	}
	tr.MaxIdleConnsPerHost, tr.MaxIdleConns = 256, 256
	c, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Region: "us-east-1",
		Transport: tr, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, err
	}
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1", ObjectLocking: true}); err != nil {
		return nil, err
	}
	return &floorRunner{c: c, bucket: bucket, concurrency: cfg.Concurrency, retention: cfg.Retention}, nil
}

// put PUTs msgs and returns how long it took.
func (f *floorRunner) put(ctx context.Context, msgs [][]byte) (time.Duration, error) {
	start := time.Now()
	err := parallel(len(msgs), f.concurrency, func(i int) error {
		_, _, err := f.putOne(ctx, msgs[i])
		return err
	})
	return time.Since(start), err
}

// putOne PUTs one object under its SHA-256, as the archive's blob store does.
func (f *floorRunner) putOne(ctx context.Context, msg []byte) (sum [32]byte, key string, err error) {
	sum = sha256.Sum256(msg)
	h := hex.EncodeToString(sum[:])
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream", DisableContentSha256: true,
		UserMetadata:    map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum[:])},
		Mode:            minio.Compliance,
		RetainUntilDate: time.Now().Add(f.retention).UTC().Truncate(time.Second).Add(time.Second),
	}
	opts.SetMatchETagExcept("*")
	key = "sha256/" + h[:2] + "/" + h
	_, err = f.c.PutObject(ctx, f.bucket, key, bytes.NewReader(msg), int64(len(msg)), "", h, opts)
	return sum, key, err
}

// pipelineRunner stores receipts through the archive's gRPC Store.
type pipelineRunner struct {
	cfg              archiveBenchConfig
	a                *archive.Archive
	l                *merklelog.Log
	client           archivev1.ArchiveServiceClient
	closers          []func()
	trusted, created atomic.Int64
}

func newPipeline(ctx context.Context, cfg archiveBenchConfig, s settings, pool *pgxpool.Pool, bucket string) (p *pipelineRunner, err error) {
	p = &pipelineRunner{cfg: cfg}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	blobs, err := s3store.New(ctx, s3store.Config{
		Endpoint: cfg.Endpoint, AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey, Bucket: bucket,
		Retention: cfg.Retention, CreateBucket: true,
	})
	if err != nil {
		return nil, err
	}
	skey, _, err := tlog.GenerateKey("bench.pecarchive.local/log")
	if err != nil {
		return nil, err
	}
	if err := archive.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	l, _, err := openLogWithKey(ctx, pool, blobs, skey, nil)
	if err != nil {
		return nil, err
	}
	p.l = l
	ca, err := pectest.NewCA(7, nil)
	if err != nil {
		return nil, err
	}
	v, err := smime.New(smime.Config{Anchors: smime.NewTrustStore(ca.Root)})
	if err != nil {
		return nil, err
	}
	a, err := archive.New(ctx, archive.Config{Pool: pool, Blobs: blobs, Log: l, Verifier: v, NoMigrate: true, BatchDelay: cfg.BatchDelay})
	if err != nil {
		return nil, err
	}
	p.a = a
	p.closers = append(p.closers, func() { a.Close(context.Background()) })

	token, hash, err := auth.GenerateToken()
	if err != nil {
		return nil, err
	}
	creds, err := auth.ParseCredentials([]byte("token " + hash + " bench ingest\n"))
	if err != nil {
		return nil, err
	}
	authz, err := auth.NewAuthorizer(creds, grpcserver.DefaultPolicy(), nil)
	if err != nil {
		return nil, err
	}
	srv, err := grpcserver.New(grpcserver.Config{Archive: a, Authorizer: authz})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(lis)
	p.closers = append(p.closers, srv.Stop)
	conn, client, err := archiveclient.Dial(lis.Addr().String(), archiveclient.DialOptions{Token: token})
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { conn.Close() })
	p.client = client
	return p, nil
}

// batchSize is the archive's mean number of Store calls per commit transaction so far (at least 1).
func (p *pipelineRunner) batchSize() int {
	st := p.a.Stats()
	if st.Batches == 0 {
		return 1
	}
	return max(1, int(math.Round(float64(st.Batched)/float64(st.Batches))))
}

// close stops the client, the server and the archive, in that order.
func (p *pipelineRunner) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// store stores msgs (UIDs from offset+1) through gRPC Store and returns how long it took; with
// profile set, under the CPU profiler when one was asked for.
func (p *pipelineRunner) store(ctx context.Context, msgs [][]byte, offset int, profile bool) (time.Duration, error) {
	if profile && p.cfg.CPUProfile != "" {
		f, err := os.Create(p.cfg.CPUProfile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	err := parallel(len(msgs), p.cfg.Concurrency, func(i int) error {
		src := &archivev1.Source{Mailbox: "protocollo@pec.ordine.example.it", Folder: "INBOX", UidValidity: 1, Uid: uint32(offset + i + 1)}
		rec, err := archiveclient.StoreBytes(ctx, p.client, msgs[i], src, nil)
		if err != nil {
			return err
		}
		if rec.GetVerdict().GetTrusted() {
			p.trusted.Add(1)
		}
		if rec.GetNew() {
			p.created.Add(1)
		}
		return nil
	})
	return time.Since(start), err
}

// finish publishes a checkpoint, prints the archive's figures and checks that all n receipts
// were stored valid and trusted.
func (p *pipelineRunner) finish(ctx context.Context, n int, out io.Writer) (*merklelog.Log, error) {
	if _, err := p.a.Publish(ctx); err != nil {
		return nil, err
	}
	st := p.a.Stats()
	fmt.Fprintf(out, "pipeline: %d stored (%d new, %d valid+trusted); archive: %d messages (postacert.eml included), %d duplicates, %d transactions (%d failed, %d redone after a look-up), %d checkpoints\n",
		n, p.created.Load(), p.trusted.Load(), st.Stored, st.Duplicates, st.Batches, st.Failed, st.Redone, st.Published)
	// Where a Store call's time went: with every call waiting for a group commit, and one
	// transaction at a time, the commit is what a fixed concurrency spends its time on.
	if st.Calls > 0 && st.Batches > 0 {
		mean := func(d time.Duration, n uint64) time.Duration {
			return (d / time.Duration(n)).Round(10 * time.Microsecond)
		}
		fmt.Fprintf(out, "store call, mean: parse+verify %s, blob put %s, waiting for the commit %s; transactions: %.1f calls each, collected in %s, committed in %s\n",
			mean(st.Prepare, st.Calls), mean(st.Put, st.Calls), mean(st.Commit, st.Calls),
			float64(st.Batched)/float64(st.Batches), mean(st.Collect, st.Batches), mean(st.Transact, st.Batches))
	}
	if int(p.trusted.Load()) != n {
		return nil, fmt.Errorf("%d of %d receipts were not valid+trusted", n-int(p.trusted.Load()), n)
	}
	return p.l, nil
}

// benchProofs times InclusionProof for random leaves at the final tree size.
func benchProofs(ctx context.Context, l *merklelog.Log, n int) (p50, p99 time.Duration, size uint64, err error) {
	size, err = l.Size(ctx)
	if err != nil || size == 0 {
		return 0, 0, size, err
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		idx := rand.Uint64N(size)
		t := time.Now()
		if _, err := l.InclusionProof(ctx, idx, size); err != nil {
			return 0, 0, size, err
		}
		lat[i] = time.Since(t)
	}
	slices.Sort(lat)
	return lat[n/2], lat[min(n-1, n*99/100)], size, nil
}

type s3server struct {
	dir, endpoint, access, secret string
	pid                           int
	script                        string
	keep                          bool
}

func (s *s3server) stop() {
	_ = exec.Command(s.script, "stop", s.dir).Run()
	if !s.keep {
		os.RemoveAll(s.dir)
	}
}

// startS3Server starts a throw-away S3 server on a free loopback port with the project's script.
func startS3Server(kind string, keep bool) (*s3server, error) {
	script, err := findScript("s3-server.sh")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pecarchive-bench-s3-")
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	cmd := exec.Command(script, kind, dir, fmt.Sprint(port))
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", script, err)
	}
	srv := &s3server{dir: dir, script: script, keep: keep}
	sc := bufio.NewScanner(bytes.NewReader(outb))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "S3_ENDPOINT":
			srv.endpoint = v
		case "S3_ACCESS_KEY":
			srv.access = v
		case "S3_SECRET_KEY":
			srv.secret = v
		case "S3_PID":
			fmt.Sscan(v, &srv.pid)
		}
	}
	if srv.endpoint == "" {
		srv.stop()
		return nil, fmt.Errorf("%s printed no S3_ENDPOINT", script)
	}
	return srv, nil
}

// findScript looks for scripts/NAME in the working directory and its parents (the repository).
func findScript(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/%s not found: run from the repository, or pass -s3-endpoint", name)
		}
		dir = parent
	}
}

// pgCPU returns the CPU time used so far by the PostgreSQL server processes running on this
// machine (0 where none can be read, for example a remote server).
func pgCPU() time.Duration {
	d, _ := procstat.CPUByName("postgres")
	return d
}

// procCPU returns the CPU time process pid used so far, or 0 where it cannot be read.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	st, err := procstat.Read(pid)
	if err != nil {
		return 0
	}
	return st.CPU
}
