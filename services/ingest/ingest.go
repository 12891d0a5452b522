package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultLeaseTTL         = 30 * time.Second
	DefaultPollInterval     = time.Minute
	DefaultStatusInterval   = time.Minute
	DefaultFullPassInterval = 5 * time.Minute
	DefaultIdleRestart      = 28 * time.Minute
	DefaultDialTimeout      = 30 * time.Second
	DefaultCommandTimeout   = 2 * time.Minute
	DefaultMinRate          = 64 << 10 // bytes per second a link must at least sustain
	DefaultMaxMessageSize   = 128 << 20
	DefaultConcurrency      = 32
	DefaultWindowBytes      = 64 << 20
	DefaultBatchMessages    = 500
	DefaultBatchBytes       = 16 << 20
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = 5 * time.Minute
	DefaultAuthBackoff      = 15 * time.Minute
	DefaultQuotaWarn        = 0.80
	DefaultOnceAttempts     = 5
	DefaultStoreBackoffMax  = 30 * time.Second
	DefaultCursorInterval   = 250 * time.Millisecond
)

// Options tune the service; nil or zero fields mean the defaults.
type Options struct {
	// LeaseTTL is how long a mailbox lease lasts unless renewed (every LeaseTTL/3). Another
	// replica takes a mailbox over within one LeaseTTL of its holder's death.
	LeaseTTL time.Duration
	// PollInterval is the pause between passes on a server without IDLE.
	PollInterval time.Duration
	// StatusInterval is how often the folders IDLE does not watch are checked with STATUS
	// while idling (one short command each; a folder with news is pulled); IDLE is re-issued
	// at least that often.
	StatusInterval time.Duration
	// FullPassInterval is how often every folder is pulled even without news (after_archive
	// policies act on messages as they age; the quota is read after every pass).
	FullPassInterval time.Duration
	// IdleRestart bounds one IDLE command (servers drop clients idle for 30 minutes).
	IdleRestart time.Duration
	// DialTimeout bounds connecting; CommandTimeout bounds a command with little data.
	DialTimeout, CommandTimeout time.Duration
	// MinRate is the slowest link tolerated, in bytes per second: a FETCH of B bytes may take
	// CommandTimeout + B/MinRate before the connection is dropped.
	MinRate int64
	// MaxMessageSize bounds one message (larger ones are hashed piecewise and dead-lettered);
	// the archive has its own limit.
	MaxMessageSize int64
	// Concurrency bounds the Store calls in flight per mailbox; WindowBytes bounds the bytes
	// fetched and not yet acknowledged per mailbox (one message always fits). Two folders
	// pulled at once share them.
	Concurrency int
	WindowBytes int64
	// BatchMessages and BatchBytes bound one UID FETCH of bodies.
	BatchMessages int
	BatchBytes    int64
	// BackoffMin and BackoffMax bound the exponential backoff (with jitter) between
	// reconnections; AuthBackoff is the pause after the server refused the credentials or the
	// TLS handshake failed.
	BackoffMin, BackoffMax, AuthBackoff time.Duration
	// StoreBackoffMax bounds the pause between retries of a Store the archive could not take.
	StoreBackoffMax time.Duration
	// QuotaWarn is the quota usage (fraction of the limit) from which a warning is logged.
	QuotaWarn float64
	// OnceAttempts bounds the connections Once makes per mailbox.
	OnceAttempts int
	// CursorInterval spaces the cursor writes of a folder being pulled (a crash re-fetches at
	// most what was acknowledged meanwhile; the archive finds it stored).
	CursorInterval time.Duration
	// OneConnection keeps to one connection per mailbox (by default a second one pulls another
	// folder at the same time).
	OneConnection bool
}

func (o *Options) withDefaults() *Options {
	r := Options{}
	if o != nil {
		r = *o
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	def(&r.LeaseTTL, DefaultLeaseTTL)
	def(&r.PollInterval, DefaultPollInterval)
	def(&r.StatusInterval, DefaultStatusInterval)
	def(&r.FullPassInterval, DefaultFullPassInterval)
	def(&r.IdleRestart, DefaultIdleRestart)
	def(&r.DialTimeout, DefaultDialTimeout)
	def(&r.CommandTimeout, DefaultCommandTimeout)
	def(&r.BackoffMin, DefaultBackoffMin)
	def(&r.BackoffMax, DefaultBackoffMax)
	def(&r.AuthBackoff, DefaultAuthBackoff)
	def(&r.StoreBackoffMax, DefaultStoreBackoffMax)
	def(&r.CursorInterval, DefaultCursorInterval)
	if r.MinRate <= 0 {
		r.MinRate = DefaultMinRate
	}
	if r.MaxMessageSize <= 0 {
		r.MaxMessageSize = DefaultMaxMessageSize
	}
	if r.Concurrency <= 0 {
		r.Concurrency = DefaultConcurrency
	}
	if r.WindowBytes <= 0 {
		r.WindowBytes = DefaultWindowBytes
	}
	if r.BatchMessages <= 0 {
		r.BatchMessages = DefaultBatchMessages
	}
	if r.BatchBytes <= 0 {
		r.BatchBytes = DefaultBatchBytes
	}
	if r.QuotaWarn <= 0 || r.QuotaWarn > 1 {
		r.QuotaWarn = DefaultQuotaWarn
	}
	if r.OnceAttempts <= 0 {
		r.OnceAttempts = DefaultOnceAttempts
	}
	r.IdleRestart = min(r.IdleRestart, 29*time.Minute-time.Second)
	return &r
}

// Config configures a Service.
type Config struct {
	// Mailboxes to pull (see ParseMailboxes). Required.
	Mailboxes []Mailbox
	// Archiver stores the messages (the archive is the single writer). Required.
	Archiver Archiver
	// Pool holds ingest's tables (cursors, leases, dead letters), in the catalog's database.
	// Required.
	Pool *pgxpool.Pool
	// NoMigrate skips running Migrate in New.
	NoMigrate bool
	// Replica identifies this replica in leases (default: host name, process id and a random
	// suffix). A replica restarted under the same identity takes its leases back at once instead
	// of waiting for them to expire; two live replicas must never share one.
	Replica string
	// LookupEnv resolves password_env (os.LookupEnv in the commands); nil refuses password_env.
	LookupEnv func(string) (string, bool)
	// Registerer receives the metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Options tune the service; nil means the defaults.
	Options *Options
}

// FolderReport sums up what one pass (or Once) did to a folder.
type FolderReport struct {
	Mailbox, Folder string
	Fetched         int // messages fetched
	New             int // stored for the first time
	Already         int // already archived
	Refused         int // refused by the archive (dead letters)
	UIDValidity     uint32
	UID             uint32 // the cursor at the end
	Resets          int    // UIDVALIDITY changes seen
}

func (r FolderReport) String() string {
	return fmt.Sprintf("ingest: %s/%s fetched %d, new %d, already %d, refused %d, cursor %d/%d",
		r.Mailbox, r.Folder, r.Fetched, r.New, r.Already, r.Refused, r.UIDValidity, r.UID)
}

// MailboxError is a mailbox that failed, with the reason.
type MailboxError struct {
	Mailbox string
	Err     error
}

func (e MailboxError) Error() string { return fmt.Sprintf("ingest: mailbox %s: %v", e.Mailbox, e.Err) }
func (e MailboxError) Unwrap() error { return e.Err }

// Report is what Once did.
type Report struct {
	Folders []FolderReport // sorted by mailbox, then folder
	Failed  []MailboxError // sorted by mailbox
}

// Service pulls the configured mailboxes into the archive.
type Service struct {
	cfg     Config
	o       *Options
	st      *state
	log     *slog.Logger
	m       *metrics
	replica string

	// crashed (tests only) makes a cancelled service keep its leases, as a killed process does.
	crashed atomic.Bool
}

// New checks cfg and returns a Service (running ingest's migrations unless cfg.NoMigrate).
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Archiver == nil || cfg.Pool == nil || len(cfg.Mailboxes) == 0 {
		return nil, errors.New("ingest: Config.Mailboxes, Archiver and Pool are required")
	}
	names := map[string]bool{}
	for _, m := range cfg.Mailboxes {
		if names[m.Name] {
			return nil, fmt.Errorf("%w: mailbox name %q appears twice", ErrConfig, m.Name)
		}
		names[m.Name] = true
	}
	if !cfg.NoMigrate {
		if err := Migrate(ctx, cfg.Pool); err != nil {
			return nil, err
		}
	}
	s := &Service{cfg: cfg, o: cfg.Options.withDefaults(), st: &state{pool: cfg.Pool}, log: cfg.Logger, replica: cfg.Replica}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.replica == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		rand.Read(b)
		s.replica = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ingest: metrics: %w", err)
	}
	s.m = m
	return s, nil
}

// Replica returns this replica's identity in leases.
func (s *Service) Replica() string { return s.replica }

// Run pulls every mailbox continuously until ctx is cancelled: IDLE where offered plus a STATUS
// check every StatusInterval, polling otherwise; reconnecting with backoff; one replica per
// mailbox at a time (leases). It returns nil after ctx is cancelled, once every mailbox has
// stopped and released its lease.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.cfg.Mailboxes {
		r := s.runner(&s.cfg.Mailboxes[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Once pulls every configured folder of every mailbox to its end, then returns what it did.
// Mailboxes are pulled in parallel; one that fails (wrong credentials, a certificate refused,
// its lease held elsewhere, the server unreachable after Options.OnceAttempts connections) is
// named in Report.Failed while the others go on. The error is non-nil only when ctx ended.
func (s *Service) Once(ctx context.Context) (Report, error) {
	var (
		mu  sync.Mutex
		rep Report
		wg  sync.WaitGroup
	)
	for i := range s.cfg.Mailboxes {
		r := s.runner(&s.cfg.Mailboxes[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			folders, err := r.once(ctx)
			mu.Lock()
			defer mu.Unlock()
			rep.Folders = append(rep.Folders, folders...)
			if err != nil {
				rep.Failed = append(rep.Failed, MailboxError{Mailbox: r.mb.Name, Err: err})
			}
		}()
	}
	wg.Wait()
	sort.Slice(rep.Folders, func(i, j int) bool {
		a, b := rep.Folders[i], rep.Folders[j]
		if a.Mailbox != b.Mailbox {
			return a.Mailbox < b.Mailbox
		}
		return a.Folder < b.Folder
	})
	sort.Slice(rep.Failed, func(i, j int) bool { return rep.Failed[i].Mailbox < rep.Failed[j].Mailbox })
	return rep, ctx.Err()
}
