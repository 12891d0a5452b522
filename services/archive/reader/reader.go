// Package reader owns the read-only side of the evidence store: everything the archive wrote,
// read back from the catalog, the blob store and the transparency log. The archive (package
// services/archive) is the single writer; the audit, the archive's GetRecord RPC and the query
// service read through a Reader, as a transparency log hands out an appender to its one
// sequencer and read-only log readers to everyone else.
//
// It answers: a message's record with its sources ([Reader.Get]); its exact bytes
// ([Reader.Open]), including those of a message catalogued without a blob of its own (the
// postacert.eml of a complete delivery receipt, re-extracted from the receipt's blob and
// re-hashed; [Reader.OpenMessage]); the messages and the delivery states of one conversation by
// msgid, PEC id or the SHA-256 of any of its messages ([Reader.Messages], [Reader.Deliveries]);
// searches; links; signer chains and anchor sets; the log's checkpoints, leaves and proofs.
//
// Errors are sorted into kinds here, once, where they arise: [ErrInvalid], [ErrNotFound],
// [ErrOutOfRange], [ErrIntegrity], [ErrSchema] and [ErrUnavailable] (use errors.Is; the error of
// the store underneath stays wrapped too). Callers such as gRPC handlers map these kinds and need
// no storage or database package.
//
// A Reader never writes: it can run on a PostgreSQL role that may only SELECT (catalog migration
// 0007 creates one) and on a blob store opened read-only.
package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/pgerr"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// Errors; use errors.Is.
var (
	// ErrInvalid: a malformed argument (empty msgid, index beyond the size asked for, ...).
	ErrInvalid = errors.New("reader: invalid argument")
	// ErrNotFound: no such message, blob, leaf or checkpoint.
	ErrNotFound = errors.New("reader: not found")
	// ErrOutOfRange: a tree size beyond the current log (it may exist later).
	ErrOutOfRange = errors.New("reader: beyond the current log")
	// ErrIntegrity: stored data failed a check: bytes that do not hash to their SHA-256, a message
	// that the blob said to carry it does not yield, a log node missing.
	ErrIntegrity = errors.New("reader: integrity check failed")
	// ErrSchema: the catalog or the log is not set up (migrations not run).
	ErrSchema = errors.New("reader: store not set up")
	// ErrUnavailable: PostgreSQL or the blob store is down or timed out; retry later.
	ErrUnavailable = errors.New("reader: unavailable")
)

// Config configures a [Reader].
type Config struct {
	// Pool is the PostgreSQL pool of the catalog and the log (its search_path selects the
	// schema). Required.
	Pool *pgxpool.Pool
	// Blobs is the blob store. Required.
	Blobs blob.Store
	// Log is the transparency log; nil opens one without a signer on Pool.
	Log *merklelog.Log
	// ParseOptions are used to re-extract contained messages (nil: pec's defaults; the size
	// limit is always raised to the carrying message's size).
	ParseOptions *pec.Options
}

// Reader reads the evidence store. It is safe for concurrent use and keeps no state besides
// its configuration.
type Reader struct {
	cat   *catalog.Catalog
	blobs blob.Store
	log   *merklelog.Log
	parse pec.Options
}

// New returns a Reader. It checks that the log's tables exist.
func New(ctx context.Context, cfg Config) (*Reader, error) {
	if cfg.Pool == nil || cfg.Blobs == nil {
		return nil, errors.New("reader: Config.Pool and Config.Blobs are required")
	}
	r := &Reader{cat: catalog.New(cfg.Pool), blobs: cfg.Blobs, log: cfg.Log}
	if cfg.ParseOptions != nil {
		r.parse = *cfg.ParseOptions
	}
	if r.log == nil {
		l, err := merklelog.New(ctx, merklelog.Config{Pool: cfg.Pool})
		if err != nil {
			return nil, classify("open log", err)
		}
		r.log = l
	}
	return r, nil
}

// Origin returns the log's origin ("" when the log was opened without signer, verifier or
// origin).
func (r *Reader) Origin() string { return r.log.Origin() }

// classify wraps err in the kind it belongs to (see the package documentation).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrNotFound), errors.Is(err, ErrOutOfRange),
		errors.Is(err, ErrIntegrity), errors.Is(err, ErrSchema), errors.Is(err, ErrUnavailable):
		return err
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, blob.ErrNotFound), errors.Is(err, merklelog.ErrNotFound):
		return fmt.Errorf("%w: %s: %w", ErrNotFound, op, err)
	case errors.Is(err, catalog.ErrInvalid), errors.Is(err, merklelog.ErrInvalid):
		return fmt.Errorf("%w: %s: %w", ErrInvalid, op, err)
	case errors.Is(err, merklelog.ErrOutOfRange):
		return fmt.Errorf("%w: %s: %w", ErrOutOfRange, op, err)
	case errors.Is(err, blob.ErrIntegrity), errors.Is(err, merklelog.ErrCorrupt), errors.Is(err, catalog.ErrNotContained):
		return fmt.Errorf("%w: %s: %w", ErrIntegrity, op, err)
	case errors.Is(err, merklelog.ErrSchema), pgerr.UndefinedTable(err):
		return fmt.Errorf("%w: %s: %w", ErrSchema, op, err)
	case errors.Is(err, blob.ErrUnavailable), errors.Is(err, merklelog.ErrUnavailable), pgerr.Transient(err):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("reader: %s: %w", op, err)
}

// Record is a message's catalog row with the places it was found.
type Record struct {
	catalog.Message
	// Sources are where the message was found, first seen first.
	Sources []catalog.Source
}

// Get returns the record of the message sum with its sources, or an error wrapping ErrNotFound.
func (r *Reader) Get(ctx context.Context, sum [32]byte) (Record, error) {
	m, err := r.cat.Get(ctx, sum)
	if err != nil {
		return Record{}, classify("get", err)
	}
	srcs, err := r.cat.Sources(ctx, sum)
	if err != nil {
		return Record{}, classify("get sources", err)
	}
	return Record{Message: m, Sources: srcs}, nil
}

// Message returns the catalog row of the message sum, or an error wrapping ErrNotFound.
func (r *Reader) Message(ctx context.Context, sum [32]byte) (catalog.Message, error) {
	m, err := r.cat.Get(ctx, sum)
	return m, classify("get", err)
}

// Open returns the exact stored bytes of the message sum. The reader verifies the SHA-256 and
// fails at EOF with an error wrapping ErrIntegrity on a mismatch. A message without a blob of
// its own (catalog.Message.ContainedIn) is extracted from the blob of the message carrying it,
// as [Reader.OpenMessage] does.
func (r *Reader) Open(ctx context.Context, sum [32]byte) (io.ReadCloser, error) {
	rc, err := r.blobs.Get(ctx, sum)
	if err == nil {
		return &integrityReader{rc}, nil
	}
	if !errors.Is(err, blob.ErrNotFound) {
		return nil, classify("open blob", err)
	}
	m, cerr := r.cat.Get(ctx, sum)
	if errors.Is(cerr, catalog.ErrNotFound) || (cerr == nil && m.ContainedIn == ([32]byte{})) {
		return nil, classify("open blob", err)
	}
	if cerr != nil {
		return nil, classify("open blob", cerr)
	}
	return r.openContained(ctx, &m)
}

// OpenMessage returns the exact bytes of the catalogued message m, as [Reader.Open] does but
// without looking m up: from its own blob (the version the archive wrote, m.BlobVersion, when
// the store keeps versions), or, when it has none and m.ContainedIn names the message carrying
// it, re-extracted from that message's blob (itself verified against its SHA-256) and re-hashed.
// A carrying blob that is missing fails with ErrNotFound, one that is altered or does not yield m
// with ErrIntegrity.
func (r *Reader) OpenMessage(ctx context.Context, m *catalog.Message) (io.ReadCloser, error) {
	rc, err := blob.GetVersion(ctx, r.blobs, m.SHA256, m.BlobVersion)
	if err == nil {
		return &integrityReader{rc}, nil
	}
	if errors.Is(err, blob.ErrNotFound) && m.ContainedIn != ([32]byte{}) {
		return r.openContained(ctx, m)
	}
	return nil, classify("open blob", err)
}

// openContained re-extracts the bytes of m from the blob of m.ContainedIn: the one
// implementation of reading a message carried inside another.
func (r *Reader) openContained(ctx context.Context, m *catalog.Message) (io.ReadCloser, error) {
	op := fmt.Sprintf("blob of %x, which carries %x", m.ContainedIn[:8], m.SHA256[:8])
	rc, err := r.blobs.Get(ctx, m.ContainedIn)
	if err != nil {
		return nil, classify(op, err)
	}
	parent, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, classify(op, err)
	}
	raw, err := catalog.ExtractContained(parent, m.SHA256, &r.parse)
	if err != nil {
		return nil, classify(op, err)
	}
	if int64(len(raw)) != m.Size {
		return nil, fmt.Errorf("%w: %x: %d bytes extracted, the catalog says %d", ErrIntegrity, m.SHA256[:8], len(raw), m.Size)
	}
	return io.NopCloser(bytes.NewReader(raw)), nil
}

// integrityReader sorts the blob store's integrity failure at EOF into ErrIntegrity.
type integrityReader struct{ io.ReadCloser }

func (r *integrityReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = classify("read blob", err)
	}
	return n, err
}

// Selector names one conversation: the original's Message-ID, the PEC id (daticert
// identificativo) the providers gave it, or the SHA-256 of any message of it (the original, its
// envelope, any receipt). Exactly one field is set.
type Selector struct {
	MsgID  string
	PECID  string
	SHA256 [32]byte
}

func (s Selector) check() error {
	n := 0
	for _, set := range []bool{s.MsgID != "", s.PECID != "", s.SHA256 != [32]byte{}} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: a selector names a msgid, a PEC id or a SHA-256, exactly one", ErrInvalid)
	}
	return nil
}

// Messages returns the messages of the conversation sel names, oldest first, at most limit
// (0: catalog.DefaultLimit; at most catalog.MaxLimit): by msgid, the messages with that
// Message-ID and those referring to it (receipts, envelopes, provider copies); by PEC id, those
// carrying it; by SHA-256, that one message.
func (r *Reader) Messages(ctx context.Context, sel Selector, limit int) ([]catalog.Message, error) {
	if err := sel.check(); err != nil {
		return nil, err
	}
	var ms []catalog.Message
	var err error
	switch {
	case sel.MsgID != "":
		ms, err = r.cat.ByMsgID(ctx, sel.MsgID, limit)
	case sel.PECID != "":
		ms, err = r.cat.ByPECID(ctx, sel.PECID, limit)
	default:
		var m catalog.Message
		if m, err = r.cat.Get(ctx, sel.SHA256); err == nil {
			ms = []catalog.Message{m}
		} else if errors.Is(err, catalog.ErrNotFound) {
			err = nil
		}
	}
	return ms, classify("messages", err)
}

// Deliveries returns the per-recipient delivery states of the conversation sel names: of the
// original with that msgid, of the message with that PEC id, or of the conversation the message
// with that SHA-256 belongs to (the original, its envelope or any of its receipts; an error
// wrapping ErrNotFound when no such message is stored).
func (r *Reader) Deliveries(ctx context.Context, sel Selector) ([]catalog.Delivery, error) {
	if err := sel.check(); err != nil {
		return nil, err
	}
	if sel.SHA256 != ([32]byte{}) {
		m, err := r.cat.Get(ctx, sel.SHA256)
		if err != nil {
			return nil, classify("deliveries", err)
		}
		switch key := catalog.ConversationKey(&m); {
		case key != "":
			sel = Selector{MsgID: key}
		case m.PECID != "":
			sel = Selector{PECID: m.PECID}
		default:
			return nil, nil
		}
	}
	var ds []catalog.Delivery
	var err error
	if sel.MsgID != "" {
		ds, err = r.cat.Deliveries(ctx, sel.MsgID)
	} else {
		ds, err = r.cat.DeliveriesByPECID(ctx, sel.PECID)
	}
	return ds, classify("deliveries", err)
}

// Search returns the messages matching q (see catalog.Query) in (received_at, sha256) order.
func (r *Reader) Search(ctx context.Context, q catalog.Query) ([]catalog.Message, error) {
	ms, err := r.cat.Search(ctx, q)
	return ms, classify("search", err)
}

// SearchDeliveries returns the deliveries matching q (see catalog.DeliveryQuery).
func (r *Reader) SearchDeliveries(ctx context.Context, q catalog.DeliveryQuery) ([]catalog.Delivery, error) {
	ds, err := r.cat.SearchDeliveries(ctx, q)
	return ds, classify("search deliveries", err)
}

// Links returns the links from and to the message sum.
func (r *Reader) Links(ctx context.Context, sum [32]byte) ([]catalog.Link, error) {
	ls, err := r.cat.Links(ctx, sum)
	return ls, classify("links", err)
}

// Chain returns the signer certificate chain stored under sum.
func (r *Reader) Chain(ctx context.Context, sum [32]byte) (catalog.CertSet, error) {
	cs, err := r.cat.Chain(ctx, sum)
	return cs, classify("chain", err)
}

// Anchors returns the trust-anchor set stored under sum.
func (r *Reader) Anchors(ctx context.Context, sum [32]byte) (catalog.CertSet, error) {
	cs, err := r.cat.Anchors(ctx, sum)
	return cs, classify("anchors", err)
}

// Conversations returns the originals a sender sent or a recipient was sent in a time range,
// newest first (see catalog.ConversationQuery).
func (r *Reader) Conversations(ctx context.Context, q catalog.ConversationQuery) ([]catalog.Conversation, error) {
	cs, err := r.cat.Conversations(ctx, q)
	return cs, classify("conversations", err)
}
