package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// Errors of the service; use errors.Is. Errors of the reader keep their kinds (reader.ErrNotFound,
// reader.ErrUnavailable, ...).
var (
	// ErrInvalid: a malformed request (no selector, a bad SHA-256 or page token, a limit
	// exceeded).
	ErrInvalid = errors.New("query: invalid request")
	// ErrNotRecorded: the read could not be recorded with the archive, so it was refused.
	ErrNotRecorded = errors.New("query: the read could not be recorded")
	// ErrLogKey: an export needs the log's public key (Config.LogKey), and it must verify the
	// log's checkpoint.
	ErrLogKey = errors.New("query: the log's public key is not configured or does not verify its checkpoint")
)

// Reader is what the service reads through; *reader.Reader implements it.
type Reader interface {
	Message(ctx context.Context, sum [32]byte) (catalog.Message, error)
	Open(ctx context.Context, sum [32]byte) (io.ReadCloser, error)
	Messages(ctx context.Context, sel reader.Selector, limit int) ([]catalog.Message, error)
	Conversations(ctx context.Context, q catalog.ConversationQuery) ([]catalog.Conversation, error)
	Search(ctx context.Context, q catalog.Query) ([]catalog.Message, error)
	Checkpoint(ctx context.Context) ([]byte, error)
	LeafData(ctx context.Context, index uint64) ([]byte, error)
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	InclusionProofs(ctx context.Context, indices []uint64, size uint64) ([][][]byte, error)
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	Chain(ctx context.Context, sum [32]byte) (catalog.CertSet, error)
	Anchors(ctx context.Context, sum [32]byte) (catalog.CertSet, error)
	MessagesByMsgIDs(ctx context.Context, msgids []string, limit int) (map[string][]catalog.Message, error)
	LeavesAt(ctx context.Context, indices []uint64) ([][]byte, error)
	UnloggedSources(ctx context.Context, sums [][32]byte) (map[[32]byte][]catalog.Source, error)
}

var _ Reader = (*reader.Reader)(nil)

// Recorder records a read of evidence with the archive, the single writer, and returns once it is
// committed: the archive's RecordAccess RPC ([RemoteRecorder]), or *archive.Archive in-process.
type Recorder interface {
	RecordAccess(ctx context.Context, acc catalog.Access) (catalog.Access, error)
}

// Caller is who reads: the authenticated principal.
type Caller struct {
	// Name identifies the caller in access records.
	Name string
	// Auth says how the caller authenticated: "token", "mtls", "local".
	Auth string
}

// Defaults and limits.
const (
	DefaultProvePageSize  = 10
	MaxProvePageSize      = 50
	DefaultSearchPageSize = 50
	MaxSearchPageSize     = 500
	DefaultSearchTimeout  = 10 * time.Second
	DefaultRecordTimeout  = 10 * time.Second
	DefaultCheckpointTTL  = time.Second
	// MaxSubjectWords bounds the subject words of a search, MaxWordLen each word.
	MaxSubjectWords = 8
	MaxWordLen      = 200
	// MaxKinds bounds the kinds of a search.
	MaxKinds = 16
	// MaxSubjectRange bounds the time range of a search by subject words that names neither a
	// sender nor a recipient: no index serves subject words, so such a search reads every message
	// of its range.
	MaxSubjectRange = 31 * 24 * time.Hour
)

// Config configures a [Service].
type Config struct {
	// Reader reads the evidence store. Required.
	Reader Reader
	// Recorder records every read of evidence. Required.
	Recorder Recorder
	// SearchTimeout bounds one search or look-up of conversations (default DefaultSearchTimeout).
	SearchTimeout time.Duration
	// RecordTimeout bounds the recording of one read (default DefaultRecordTimeout).
	RecordTimeout time.Duration
	// CheckpointTTL is how long ProveDelivery reuses the latest checkpoint it read before it
	// reads it again (default DefaultCheckpointTTL; negative: read it for every answer). The
	// archive publishes one every minute or so: an answer's checkpoint is at most that much
	// older, and receipts newer than it come without a proof.
	CheckpointTTL time.Duration
	// LogKey is the log's public (note verifier) key, which evidence bundles carry and which
	// must verify the checkpoint they are proven against. Required by Export only.
	LogKey string
}

// Service answers the questions of the query API. It is safe for concurrent use and keeps no
// state besides its configuration.
type Service struct {
	rd  Reader
	rec Recorder
	cfg Config
	cp  atomic.Pointer[cachedCheckpoint]
}

// cachedCheckpoint is the latest checkpoint read, and when.
type cachedCheckpoint struct {
	cp Checkpoint
	at time.Time
}

// New returns a Service.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Reader == nil || cfg.Recorder == nil {
		return nil, errors.New("query: Config.Reader and Config.Recorder are required")
	}
	if cfg.SearchTimeout <= 0 {
		cfg.SearchTimeout = DefaultSearchTimeout
	}
	if cfg.RecordTimeout <= 0 {
		cfg.RecordTimeout = DefaultRecordTimeout
	}
	if cfg.CheckpointTTL == 0 {
		cfg.CheckpointTTL = DefaultCheckpointTTL
	}
	return &Service{rd: cfg.Reader, rec: cfg.Recorder, cfg: cfg}, nil
}

// record records that who called method with selector and got returned, before the answer
// leaves. Any failure refuses the read.
func (s *Service) record(ctx context.Context, who Caller, method, selector string, returned [][32]byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RecordTimeout)
	defer cancel()
	_, err := s.rec.RecordAccess(ctx, catalog.Access{Principal: who.Name, Auth: who.Auth, Method: method, Selector: selector, Returned: returned})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotRecorded, err)
	}
	return nil
}

// pageSize returns the size of a page asked for: def for 0, else size when it is 1 to max.
func pageSize(size, def, max int) (int, error) {
	switch {
	case size < 0 || size > max:
		return 0, invalid("page size %d is not between 1 and %d", size, max)
	case size == 0:
		return def, nil
	}
	return size, nil
}

// invalid returns an error wrapping ErrInvalid.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
