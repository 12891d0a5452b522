// Package archive owns the archive service's core: the single writer of the evidence store. It
// takes raw messages, re-computes their SHA-256, parses and verifies them itself (package pec and
// pec/smime, as of signing time, bounded by the time received), makes the bytes durable in the
// blob store, and commits the catalog rows and the transparency-log leaf in one PostgreSQL
// transaction before it acknowledges, and publishes signed checkpoints. It writes and never
// answers questions: everything it wrote is read back through the read-only evidence reader
// (services/archive/reader), by the audit, the gRPC GetRecord and the query service alike.
//
// # Durability order
//
// [Archive.Store] returns only after, in this order: the blob store confirmed the object durable
// (server-checked checksum, or fsync); one transaction committed the message row, its sources,
// its links and delivery states (package catalog) and its log leaf (merklelog's appender, in the
// same transaction). A crash at any point leaves either nothing (retry stores it), an orphan
// blob (retry finds it and commits), or a committed record (retry returns it with New=false):
// storing is idempotent by SHA-256.
//
// # Group commit
//
// Concurrent Store calls are committed together: a committer goroutine takes every request
// waiting (up to Config.MaxBatch; while other Store calls are still parsing, verifying or writing
// their blob it waits at most Config.BatchDelay for them) and commits them in one transaction of
// one round trip (BEGIN, locks, leaves, catalog rows, derived links and deliveries, COMMIT, all
// pipelined), one append of all their leaves. One suffices when every message is new and the log
// is as the committer left it; otherwise (a message stored already, another replica appended)
// the transaction is rolled back and redone with a second, first round trip that looks up the
// stored messages and reads the log's state (Stats.Redone). A failed batch fails every
// caller in it with an error wrapping [ErrUnavailable] and leaves nothing behind (the transaction
// rolls back); a batch that fails for another reason is retried one request at a time, so one bad
// request cannot fail the others.
package archive

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/pgmigrate"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// Errors; use errors.Is.
var (
	// ErrInvalid: the input is refused (empty, larger than Config.MaxSize).
	ErrInvalid = errors.New("archive: invalid input")
	// ErrUnavailable: PostgreSQL or the blob store is down or timed out. Nothing was half
	// written; Store is idempotent, so retry it.
	ErrUnavailable = errors.New("archive: unavailable")
	// ErrNotFound: no such message (or blob).
	ErrNotFound = errors.New("archive: not found")
	// ErrClosed: the Archive was closed.
	ErrClosed = errors.New("archive: closed")
	// ErrIntegrity: stored bytes do not match their SHA-256 (blob store or catalog damaged).
	ErrIntegrity = errors.New("archive: integrity check failed")
)

// Defaults of Config.
const (
	DefaultMaxSize            = 64 << 20
	DefaultMaxBatch           = 500
	DefaultBatchDelay         = 10 * time.Millisecond
	DefaultCommitTimeout      = 5 * time.Second
	DefaultPutTimeout         = 60 * time.Second
	DefaultCheckpointInterval = time.Minute
	DefaultCheckpointEvery    = 10_000
)

// Source says where a message was found: an IMAP folder message, or a file.
type Source struct {
	Mailbox, Folder string
	UIDValidity     uint32
	UID             uint32
	InternalDate    time.Time // zero when unknown
	Path            string
}

// Record is what the archive stored for one message: its catalog row (every field of the
// evidence model, see catalog.Message) plus what the call did.
type Record struct {
	catalog.Message
	// New is true when this call stored the message; false when it was already archived.
	New bool
	// Reasons are the verification reasons (the same slice as Verdict.Reasons).
	Reasons []string
	// Sources are where the message was found; never filled by Store (reader.Reader.Get reads
	// them).
	Sources []catalog.Source
	// Postacert is the record of the postacert.eml carried by a complete delivery receipt, which
	// the archive catalogues as a message of its own (its bytes stay in the receipt's blob, see
	// catalog.Message.ContainedIn and reader.Reader.Open); nil otherwise.
	Postacert *Record
}

// Config configures an Archive.
type Config struct {
	// Pool is the PostgreSQL pool (catalog and log share it and its search_path). Required.
	Pool *pgxpool.Pool
	// Blobs stores the raw bytes. Required.
	Blobs blob.Store
	// Log is the transparency log; nil means a log without a checkpoint signer on Pool.
	Log *merklelog.Log
	// Verifier verifies signatures; nil means smime's defaults (built-in anchors, no index).
	Verifier *smime.Verifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxSize bounds one message (default DefaultMaxSize).
	MaxSize int
	// MaxBatch bounds the requests committed in one transaction (default DefaultMaxBatch).
	MaxBatch int
	// BatchDelay is how long the committer waits for more requests once it has one, as long as
	// other Store calls are on their way (parsing, verifying, writing their blob); with none, it
	// commits at once (default DefaultBatchDelay; negative: never wait).
	BatchDelay time.Duration
	// CommitTimeout bounds one commit transaction (default DefaultCommitTimeout).
	CommitTimeout time.Duration
	// PutTimeout bounds one blob Put (default DefaultPutTimeout).
	PutTimeout time.Duration
	// CheckpointInterval is how often a checkpoint is published when the log grew (default
	// DefaultCheckpointInterval; negative disables the timer).
	CheckpointInterval time.Duration
	// CheckpointEvery publishes a checkpoint after that many new leaves (default
	// DefaultCheckpointEvery; negative disables).
	CheckpointEvery int
	// NoMigrate skips running the migrations in New (run Migrate separately).
	NoMigrate bool
	// NoPostacert stops cataloguing the postacert.eml of complete delivery receipts as messages
	// of their own.
	NoPostacert bool
	// ParseOptions are passed to pec.Parse (its MaxSize is raised to MaxSize).
	ParseOptions *pec.Options
	// OnError receives errors of background work (checkpoint publishing); nil drops them.
	OnError func(error)
}

// Stats are counters since New.
type Stats struct {
	Stored     uint64 // new messages committed (postacert.eml included)
	Accesses   uint64 // access records committed (RecordAccess)
	Duplicates uint64 // Store calls for messages already stored
	Batches    uint64 // commit transactions
	Failed     uint64 // failed commit transactions
	Published  uint64 // checkpoints published
	// Refused counts checks that refused to sign: the tree did not extend the latest signed
	// checkpoint, or that checkpoint was not signed by the log's key (see ErrSigningStopped).
	Refused uint64
	// Redone counts transactions rolled back because a message was already stored or the log
	// had moved (another replica appended), then committed again after a look-up.
	Redone uint64
	// Where the time of Store calls went, summed over the calls that reached the committer:
	// parsing and verifying, making the blob durable, and waiting for the commit (in the queue,
	// then in the transaction).
	Calls                uint64
	Prepare, Put, Commit time.Duration
	// The committer's time, summed over batches: collecting a batch (from taking its first
	// request), then committing it. Batched is the number of requests committed in them.
	Batched           uint64
	Collect, Transact time.Duration
}

// Archive is the archive core. It is safe for concurrent use.
type Archive struct {
	cfg      Config
	pool     *pgxpool.Pool
	blobs    blob.Store
	log      *merklelog.Log
	cat      *catalog.Catalog
	verifier *smime.Verifier
	anchors  catalog.CertSet
	parse    pec.Options

	queue     chan *request
	publishCh chan struct{}
	stop      chan struct{}
	done      sync.WaitGroup

	mu       sync.RWMutex // guards closed against in-flight Store calls
	closed   bool
	inflight sync.WaitGroup
	coming   atomic.Int64 // Store calls started and not yet taken from the queue by the committer

	sinceCheckpoint int               // committer only
	knownSets       map[[32]byte]bool // committer only: certificate sets known to be committed
	conn            *pgxpool.Conn     // committer only: its connection
	connSince       time.Time
	logKnown        bool   // committer only: logSize and logPacked are the log as it last left it
	logSize         int64  // committer only
	logPacked       []byte // committer only
	stats           struct {
		stored, duplicates, batches, failed, published, calls, batched, redone, accesses atomic.Uint64
		prepare, put, commit, collect, transact                                          atomic.Int64 // nanoseconds
		refused                                                                          atomic.Uint64
	}
	hooks   hooks
	stopped atomic.Pointer[error] // set when signing stopped (see publish.go)
}

// hooks let in-package tests inject failures at each step of Store.
type hooks struct {
	afterPut     func(sum [32]byte) error
	beforeCommit func(ctx context.Context, tx pgx.Tx) error
	afterCommit  func() error
}

// Migrate applies the catalog's and the log's migrations in pool's current schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pgmigrate.Run(ctx, pool, catalog.Migrations, catalog.VersionTable); err != nil {
		return classify("migrate catalog", err)
	}
	if err := pgmigrate.Run(ctx, pool, merklelog.Migrations, merklelog.VersionTable); err != nil {
		return classify("migrate log", err)
	}
	return nil
}

// New returns an Archive, running the migrations first unless cfg.NoMigrate. Close it when done.
func New(ctx context.Context, cfg Config) (*Archive, error) {
	if cfg.Pool == nil || cfg.Blobs == nil {
		return nil, errors.New("archive: Config.Pool and Config.Blobs are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = DefaultMaxSize
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.BatchDelay == 0 {
		cfg.BatchDelay = DefaultBatchDelay
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = DefaultCommitTimeout
	}
	if cfg.PutTimeout <= 0 {
		cfg.PutTimeout = DefaultPutTimeout
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = DefaultCheckpointEvery
	}
	if !cfg.NoMigrate {
		if err := Migrate(ctx, cfg.Pool); err != nil {
			return nil, err
		}
	}
	a := &Archive{
		cfg:       cfg,
		knownSets: make(map[[32]byte]bool),
		pool:      cfg.Pool,
		blobs:     cfg.Blobs,
		log:       cfg.Log,
		cat:       catalog.New(cfg.Pool),
		verifier:  cfg.Verifier,
		queue:     make(chan *request, 4*cfg.MaxBatch),
		publishCh: make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	if cfg.ParseOptions != nil {
		a.parse = *cfg.ParseOptions
	}
	if a.parse.Limits.MaxSize < cfg.MaxSize {
		a.parse.Limits.MaxSize = cfg.MaxSize
	}
	if a.log == nil {
		l, err := merklelog.New(ctx, merklelog.Config{Pool: cfg.Pool})
		if err != nil {
			return nil, classify("open log", err)
		}
		a.log = l
	}
	if a.verifier == nil {
		v, err := smime.New(smime.Config{Now: cfg.Now})
		if err != nil {
			return nil, fmt.Errorf("archive: verifier: %w", err)
		}
		a.verifier = v
	}
	var ders [][]byte
	for _, c := range a.verifier.Anchors().Certificates() {
		ders = append(ders, c.Raw)
	}
	a.anchors = catalog.AnchorSet(ders, "pec/smime anchors "+a.verifier.Anchors().ID())
	if err := a.checkAppendOnly(ctx); err != nil {
		return nil, err
	}
	a.done.Add(2)
	go a.committer()
	go a.publisher()
	return a, nil
}

// Close stops accepting Store calls, waits for the ones in flight to finish, publishes a last
// checkpoint (when the log has a signer) and stops the background work. It does not close the
// pool or the blob store.
func (a *Archive) Close(ctx context.Context) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	a.inflight.Wait()
	close(a.queue)
	close(a.stop)
	a.done.Wait()
	if _, err := a.Publish(ctx); err != nil && !errors.Is(err, merklelog.ErrNoSigner) {
		return err
	}
	return nil
}

// Stats returns the counters.
func (a *Archive) Stats() Stats {
	return Stats{
		Stored:     a.stats.stored.Load(),
		Accesses:   a.stats.accesses.Load(),
		Duplicates: a.stats.duplicates.Load(),
		Batches:    a.stats.batches.Load(),
		Failed:     a.stats.failed.Load(),
		Published:  a.stats.published.Load(),
		Refused:    a.stats.refused.Load(),
		Redone:     a.stats.redone.Load(),
		Calls:      a.stats.calls.Load(),
		Prepare:    time.Duration(a.stats.prepare.Load()),
		Put:        time.Duration(a.stats.put.Load()),
		Commit:     time.Duration(a.stats.commit.Load()),
		Batched:    a.stats.batched.Load(),
		Collect:    time.Duration(a.stats.collect.Load()),
		Transact:   time.Duration(a.stats.transact.Load()),
	}
}

// Publish signs and stores a checkpoint of the current log (a no-op returning the latest when the
// log did not grow). It refuses to sign a tree that does not extend the latest signed checkpoint
// and then stops signing (see ErrSigningStopped).
func (a *Archive) Publish(ctx context.Context) ([]byte, error) {
	return a.publish(ctx)
}

func (a *Archive) publisher() {
	defer a.done.Done()
	var tick <-chan time.Time
	if a.cfg.CheckpointInterval > 0 {
		t := time.NewTicker(a.cfg.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	noSigner := false
	for {
		select {
		case <-a.stop:
			return
		case <-tick:
		case <-a.publishCh:
		}
		if noSigner {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommitTimeout)
		_, err := a.Publish(ctx)
		cancel()
		if errors.Is(err, merklelog.ErrNoSigner) {
			noSigner = true
			continue
		}
		if err != nil && !errors.Is(err, ErrSigningStopped) && a.cfg.OnError != nil {
			a.cfg.OnError(err) // a refusal was reported once, when signing stopped
		}
	}
}

// Store archives raw (see the package documentation): it returns the record once the bytes are
// durable and the catalog rows and log leaf are committed. Storing bytes already archived
// returns their record with New=false and records src as a further source.
func (a *Archive) Store(ctx context.Context, raw []byte, src Source) (Record, error) {
	if len(raw) == 0 {
		return Record{}, fmt.Errorf("%w: empty message", ErrInvalid)
	}
	if len(raw) > a.cfg.MaxSize {
		return Record{}, fmt.Errorf("%w: message of %d bytes is over the limit of %d", ErrInvalid, len(raw), a.cfg.MaxSize)
	}
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return Record{}, ErrClosed
	}
	a.inflight.Add(1)
	a.mu.RUnlock()
	defer a.inflight.Done()
	// Counted until the committer takes the request from the queue (it uncounts it there), or
	// until this call gives up before queuing it.
	a.coming.Add(1)
	queued := false
	defer func() {
		if !queued {
			a.coming.Add(-1)
		}
	}()

	sum := sha256.Sum256(raw)
	csrc := catalog.Source{Mailbox: src.Mailbox, Folder: src.Folder, UIDValidity: src.UIDValidity, UID: src.UID,
		InternalDate: src.InternalDate, Path: src.Path}

	// No look-up first: a query per call would queue every caller for a pool connection. A
	// message already stored costs a parse, a verification and an idempotent blob Put; the
	// committer then finds it stored and only records the source.
	req := &request{done: make(chan result, 1)}
	// Verification is bounded by when the message was received: the mailbox's INTERNALDATE, but
	// never later than now (a caller cannot move the bound into the future).
	received := a.cfg.Now()
	if d := src.InternalDate; !d.IsZero() && d.Before(received) {
		received = d
	}
	t0 := time.Now()
	main := a.prepare(ctx, sum, raw, received)
	main.src = csrc
	req.items = []item{main}
	if main.inner != nil {
		in := a.prepare(ctx, sha256.Sum256(main.inner), main.inner, received)
		in.src = catalog.Source{Path: "postacert.eml", Parent: sum}
		in.isInner = true
		// No blob of its own: its bytes are the part the receipt's blob carries.
		in.msg.ContainedIn = sum
		req.items = append(req.items, in)
	}
	t1 := time.Now()
	// The bytes first, durable. A postacert.eml is read back from the receipt's blob, which is
	// durable before the transaction that commits either row.
	for i := range req.items {
		it := &req.items[i]
		if it.isInner {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, a.cfg.PutTimeout)
		_, version, err := blob.PutVersion(pctx, a.blobs, it.sum, it.raw)
		cancel()
		it.msg.BlobVersion = version
		if err != nil {
			return Record{}, classify("store blob", err)
		}
		if a.hooks.afterPut != nil {
			if err := a.hooks.afterPut(it.sum); err != nil {
				return Record{}, err
			}
		}
	}
	for i := range req.items {
		req.items[i].raw = nil
	}
	t2 := time.Now()
	select {
	case a.queue <- req:
		queued = true // the committer uncounts it when it takes it
	case <-ctx.Done():
		return Record{}, fmt.Errorf("archive: waiting to commit: %w", ctx.Err())
	}
	select {
	case r := <-req.done:
		a.stats.calls.Add(1)
		a.stats.prepare.Add(int64(t1.Sub(t0)))
		a.stats.put.Add(int64(t2.Sub(t1)))
		a.stats.commit.Add(int64(time.Since(t2)))
		return r.rec, r.err
	case <-ctx.Done():
		// The commit may still happen; a retry finds it (idempotent).
		return Record{}, fmt.Errorf("archive: waiting for commit: %w", ctx.Err())
	}
}
