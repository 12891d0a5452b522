// Package audit owns the archive's self-audit: it walks the blob store, the catalog and the
// transparency log and reports every object that is missing, altered, or present in one but not
// the others, and every inconsistent checkpoint. It has no state and no I/O of its own beyond
// reading the three stores (messages' bytes through the read-only evidence reader,
// services/archive/reader); the `pecarchive audit` command prints its Report.
//
// Whatever the catalog holds is either under a leaf's digest or derived from what is, and Run
// checks all of it against the log and the blobs, after checking that the schema is the
// migrations' (schema.go: no view, policy, rule, foreign function or disabled trigger makes the
// server answer otherwise than its rows say):
//   - every blob: its bytes hash to its key (re-computed in full, read by the version the archive
//     recorded, catalog.Message.BlobVersion), its size matches the catalog; the store's own walk
//     names what hides or stands in for an object (blob.AuditWalker: a newer S3 version or a
//     delete marker over a retained one, blob-shadowed; a symbolic link in a filesystem store,
//     blob-irregular);
//   - every catalog row: its blob exists (for a message without a blob of its own,
//     catalog.Message.ContainedIn, the blob of the message carrying it exists, is intact and
//     still yields bytes that hash to the row's SHA-256); its leaf exists, is a "message" leaf
//     for the same SHA-256 and commits to the row (catalog.CheckMessageLeaf: catalog/v2 leaves
//     cover the evidence fields, received_at to the microsecond and the first source; catalog/v1
//     leaves the evidence fields and received_at to the second), and the row is stored as the
//     archive writes it (catalog.Message.NonCanonical), so an altered row is named;
//   - every source: the first of a message is under its message's leaf, every other one under a
//     "source" leaf of its own (catalog.CheckSourceLeaf);
//   - every message and source leaf: a catalog row points at it;
//   - the rows derived from the messages (derive.go): message_recipients, delivery_events and
//     message_links are derived again from the messages rows and compared both ways, so a
//     flipped ok or a non-delivery rewritten as a delivery is named even with deliveries
//     re-derived to match; cert_chains and trust_anchor_sets rows are hashed again;
//   - with Config.Deep, every row against its blob: the blob is parsed and verified again as
//     the archive does (archive.Prepare), with the recorded anchors as far as the audit's own
//     trust them (deep.go), and must give the row's evidence fields;
//   - the tree: recomputed from the leaves, every stored node, the state, every stored checkpoint
//     (root at its size, consistency with the previous one, signature when a key is given), via
//     merklelog.Log.Verify;
//   - every checkpoint kept on write-once storage, and every one held outside (Config.Outside):
//     signed by the log's keys, not larger than the tree (log-rollback), extended by it
//     (checkpoint-fork), with a database copy (checkpoint-missing), and no version written over
//     it (checkpoint-shadowed); see checkpoints.go;
//   - blobs no catalog row refers to (orphans: a crash between the blob write and the commit
//     leaves one until the message is stored again; reported as warnings);
//   - every deliveries row: derived again from its msgid's delivery events and original, as a
//     commit derives it (catalog.CheckDeliveries), so a delivery state altered, deleted or added
//     outside a commit is named;
//   - every record of a read of evidence: each access row against its access leaf (time, what
//     was returned, the row's digest), each access leaf has its row (accesses.go).
//
// The log size is read first and the audit covers leaves and rows below it, so an archive that
// keeps writing during the audit does not cause false findings.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/tlog"
)

// Finding kinds.
const (
	BlobMissing       = "blob-missing"        // a catalog row's blob is not in the blob store
	BlobAltered       = "blob-altered"        // a blob's bytes do not hash to its key, or its size differs from the catalog's
	BlobUnreadable    = "blob-unreadable"     // a blob could not be read for another reason
	BlobOrphan        = "blob-orphan"         // warning: a blob no catalog row refers to
	RowAltered        = "row-altered"         // a catalog row differs from what its leaf commits to
	RowLeafMismatch   = "row-leaf-mismatch"   // a catalog row's leaf is for another message, or not a message leaf
	RowNotInLog       = "row-not-in-log"      // a catalog row's leaf index is beyond the log
	LeafNotInCatalog  = "leaf-not-in-catalog" // a message leaf no catalog row points at
	LeafMalformed     = "leaf-malformed"      // a leaf that does not parse
	LogInconsistent   = "log-inconsistent"    // tree, node, leaf hash or state problem found by merklelog.Verify
	CheckpointInvalid = "checkpoint-invalid"  // a checkpoint inconsistent with the tree or with its predecessor, or badly signed
	DeliveryAltered   = "delivery-altered"    // a deliveries row that its msgid's delivery events and original do not make (Detail names it)
	BlobShadowed      = "blob-shadowed"       // a newer version or a delete marker hides a stored object's bytes (S3; the retained version is still read)
	BlobIrregular     = "blob-irregular"      // an entry of the blob store that is not a regular file or directory as the store makes them (a symbolic link)
	SourceAltered     = "source-altered"      // a message_sources row missing, extra, or differing from what its leaf (or its message's) commits to
	RecipientAltered  = "recipient-altered"   // a message_recipients row missing, extra or differing from what its message makes
	EventAltered      = "event-altered"       // a delivery_events row missing, extra or differing from what its receipt says
	LinkAltered       = "link-altered"        // a message_links row missing or extra
	ChainAltered      = "chain-altered"       // a cert_chains row whose certificates do not hash to its key, or missing
	AnchorsAltered    = "anchors-altered"     // a trust_anchor_sets row whose certificates do not hash to its key, or missing
	RowNotFromBlob    = "row-not-from-blob"   // --deep: parsing and verifying the blob again does not give the row's evidence fields
	AnchorsUntrusted  = "anchors-untrusted"   // --deep: a trust_anchor_sets row the archive verified with holds certificates the audit's anchors do not
)

// Warning reports whether a finding kind is informative only.
func Warning(kind string) bool { return kind == BlobOrphan || kind == CheckpointUnprotected }

// Finding is one problem.
type Finding struct {
	Kind      string
	SHA256    [32]byte // the message or blob concerned (zero when not applicable)
	LeafIndex int64    // the leaf concerned, -1 when not applicable
	Size      uint64   // for checkpoints: the checkpoint's tree size
	Detail    string
}

func (f Finding) String() string {
	s := f.Kind
	if f.SHA256 != ([32]byte{}) {
		s += fmt.Sprintf(" sha256:%x", f.SHA256)
	}
	if f.LeafIndex >= 0 {
		s += fmt.Sprintf(" leaf:%d", f.LeafIndex)
	}
	if checkpointKind(f.Kind) && f.Size > 0 {
		s += fmt.Sprintf(" size:%d", f.Size)
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// Report is the outcome of Run.
type Report struct {
	Started, Finished time.Time
	LogSize           uint64 // leaves audited
	MessageLeaves     uint64
	AccessLeaves      uint64
	AccessRows        uint64 // access rows audited (see accesses.go)
	Rows              uint64 // catalog rows audited
	Blobs             uint64 // blobs in the store
	BlobBytes         uint64 // bytes re-hashed
	Checkpoints       uint64
	// WriteOnceCheckpoints and OutsideCheckpoints are the checkpoints checked from write-once
	// storage and from Config.Outside.
	WriteOnceCheckpoints, OutsideCheckpoints uint64
	DeliveryMsgIDs                           uint64 // message ids whose deliveries were derived again
	// LegacyRows are catalog rows under catalog/v1 leaves (written before catalog/v2): their
	// received_at is checked to the second only, and LegacySources of their sources have no
	// leaf: nothing but the catalog vouches for those.
	LegacyRows, LegacySources uint64
	// Rows of the tables checked beside messages.
	Sources, SourceLeaves, Recipients, Events, Links, CertSets uint64
	// Reparsed counts the blobs parsed and verified again (Config.Deep).
	Reparsed  uint64
	Findings  []Finding
	Truncated bool // more findings than Config.MaxFindings
}

// OK reports whether the audit found nothing but warnings.
func (r *Report) OK() bool {
	for _, f := range r.Findings {
		if !Warning(f.Kind) {
			return false
		}
	}
	return !r.Truncated
}

// Count returns how many findings of kind the report holds.
func (r *Report) Count(kind string) int {
	n := 0
	for _, f := range r.Findings {
		if f.Kind == kind {
			n++
		}
	}
	return n
}

// Defaults of Config.
const (
	DefaultWorkers     = 4
	DefaultMaxFindings = 10_000
)

// Config says what to audit.
type Config struct {
	Pool  *pgxpool.Pool // catalog database (search_path selects the schema)
	Blobs blob.Store
	Log   *merklelog.Log
	// LogKey, when set, is the log's public key (tlog verifier key): every checkpoint's
	// signature is checked with it.
	LogKey string
	// LogKeys are more public keys of the log, one or more per string, one per line (see
	// tlog.ParseVerifierKeys): the keys it signed with before a rotation. A checkpoint signed
	// by any of them or by LogKey verifies.
	LogKeys []string
	// Checkpoints is the write-once storage of the log's checkpoints; nil means Blobs when it
	// keeps them (fsstore and s3store do).
	Checkpoints CheckpointSource
	// Outside are signed checkpoints held outside the archive (an auditor's or a witness's
	// copy): each is checked against the tree like a write-once one.
	Outside []OutsideCheckpoint
	// Workers read blobs concurrently (default DefaultWorkers).
	Workers int
	// MaxFindings bounds the report (default DefaultMaxFindings).
	MaxFindings int
	// Deep parses and verifies every blob again as the archive does (archive.Prepare) and
	// compares the result with its catalog row. Signatures are verified with the trust anchors
	// recorded for each message (trust_anchor_sets), else with Verifier's.
	Deep bool
	// Verifier is the archive's verifier (nil: pec/smime's defaults), for Deep: it verifies the
	// messages without recorded anchors, and its provider index, if any, is used for every
	// message, as the archive's was.
	Verifier *smime.Verifier
	// ParseOptions are the archive's pec.Parse options, if it had any (Deep).
	ParseOptions *pec.Options
}

// Run audits the archive. Findings are in the report; the error reports only a failure to read
// (a store unavailable), in which case the report holds what was found until then.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Pool == nil || cfg.Blobs == nil || cfg.Log == nil {
		return Report{}, errors.New("audit: Config.Pool, Blobs and Log are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.MaxFindings <= 0 {
		cfg.MaxFindings = DefaultMaxFindings
	}
	keys, err := logKeys(cfg)
	if err != nil {
		return Report{}, err
	}
	rd, err := reader.New(ctx, reader.Config{Pool: cfg.Pool, Blobs: cfg.Blobs, Log: cfg.Log, ParseOptions: cfg.ParseOptions})
	if err != nil {
		return Report{}, fmt.Errorf("audit: %w", err)
	}
	a := &auditor{cfg: cfg, keys: keys, cat: catalog.New(cfg.Pool), rd: rd, rep: Report{Started: time.Now().UTC()}}
	err = a.run(ctx)
	a.rep.Finished = time.Now().UTC()
	return a.rep, err
}

type auditor struct {
	cfg  Config
	keys []note.Verifier // the log's public keys (Config.LogKey, LogKeys)
	cat  *catalog.Catalog
	rd   *reader.Reader
	mu   sync.Mutex
	rep  Report

	deepMu    sync.Mutex
	verifiers map[[32]byte]deepVerifier // Deep: by anchor set
}

func (a *auditor) add(f Finding) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.rep.Findings) >= a.cfg.MaxFindings {
		a.rep.Truncated = true
		return
	}
	a.rep.Findings = append(a.rep.Findings, f)
}

func (a *auditor) run(ctx context.Context) error {
	if err := a.schema(ctx); err != nil {
		return err
	}
	size, err := a.cfg.Log.Size(ctx)
	if err != nil {
		return fmt.Errorf("audit: log size: %w", err)
	}
	a.rep.LogSize = size
	if err := a.tree(ctx); err != nil {
		return err
	}
	if err := a.checkpoints(ctx, size); err != nil {
		return err
	}
	if err := a.rowsAndLeaves(ctx, size); err != nil {
		return err
	}
	if err := a.storedRows(ctx); err != nil {
		return err
	}
	if err := a.certSets(ctx); err != nil {
		return err
	}
	if err := a.blobsOfRows(ctx, size); err != nil {
		return err
	}
	if err := a.orphans(ctx); err != nil {
		return err
	}
	if err := a.accesses(ctx, size); err != nil {
		return err
	}
	return a.deliveries(ctx)
}

// deliveryPage is how many msgids one derivation query checks.
const deliveryPage = 500

// deliveries derives every msgid's deliveries again and reports the rows that differ. Each page
// is one query, so a commit in between is seen whole or not at all.
func (a *auditor) deliveries(ctx context.Context) error {
	for after := ""; ; {
		ids, err := catalog.DeliveryMsgIDs(ctx, a.cfg.Pool, after, deliveryPage)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		bad, err := catalog.CheckDeliveries(ctx, a.cfg.Pool, ids)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		for _, m := range bad {
			a.add(Finding{Kind: DeliveryAltered, LeafIndex: -1,
				Detail: fmt.Sprintf("msgid %q recipient %q: %s", m.MsgID, m.Recipient, m.What)})
		}
		a.rep.DeliveryMsgIDs += uint64(len(ids))
		after = ids[len(ids)-1]
	}
}

// tree runs merklelog's own audit and checks checkpoint signatures.
func (a *auditor) tree(ctx context.Context) error {
	problems, err := a.cfg.Log.Verify(ctx)
	if err != nil {
		return fmt.Errorf("audit: log: %w", err)
	}
	for _, p := range problems {
		f := Finding{Kind: LogInconsistent, LeafIndex: -1, Detail: p.String()}
		switch p.Object {
		case merklelog.ObjectCheckpoint:
			f.Kind, f.Size = CheckpointInvalid, p.Index
		case merklelog.ObjectLeaf:
			f.LeafIndex = int64(p.Index)
		}
		a.add(f)
	}
	err = a.cfg.Log.Checkpoints(ctx, func(size uint64, signed []byte) error {
		a.rep.Checkpoints++
		if len(a.keys) == 0 {
			return nil
		}
		cp, err := tlog.VerifyCheckpointAny(signed, a.keys)
		if err != nil {
			a.add(Finding{Kind: CheckpointInvalid, LeafIndex: -1, Size: size, Detail: err.Error()})
		} else if cp.Size != size {
			a.add(Finding{Kind: CheckpointInvalid, LeafIndex: -1, Size: size, Detail: fmt.Sprintf("signed size %d differs from stored size", cp.Size)})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: checkpoints: %w", err)
	}
	return nil
}

var errStop = errors.New("audit: stop")

// blobsOfRows re-hashes the blob of every catalog row below size.
func (a *auditor) blobsOfRows(ctx context.Context, size uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan catalog.Message, a.cfg.Workers*2)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for range a.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				var keep *[]byte
				var raw []byte
				if a.cfg.Deep {
					keep = &raw
				}
				n, err := a.readMessage(ctx, &m, keep)
				if err == nil && a.cfg.Deep {
					a.reparse(ctx, &m, raw)
				}
				if err != nil && m.BlobVersion != "" && (errors.Is(err, reader.ErrNotFound) || errors.Is(err, reader.ErrIntegrity)) {
					var named bool
					if named, err = a.versionElsewhere(ctx, &m, err); named {
						continue
					}
				}
				switch {
				case err == nil:
					if int64(n) != m.Size {
						a.add(Finding{Kind: BlobAltered, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex),
							Detail: fmt.Sprintf("blob has %d bytes, the catalog says %d", n, m.Size)})
					}
				case errors.Is(err, reader.ErrNotFound):
					a.add(Finding{Kind: BlobMissing, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex), Detail: err.Error()})
				case errors.Is(err, reader.ErrIntegrity):
					a.add(Finding{Kind: BlobAltered, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex), Detail: err.Error()})
				case errors.Is(err, reader.ErrUnavailable), ctx.Err() != nil:
					fail(fmt.Errorf("audit: blob store: %w", err))
				default:
					a.add(Finding{Kind: BlobUnreadable, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex), Detail: err.Error()})
				}
			}
		}()
	}
	err := a.cat.Scan(ctx, func(m catalog.Message) error {
		if m.LeafIndex >= size {
			return errStop
		}
		select {
		case work <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("audit: catalog: %w", err)
	}
	return nil
}

// versionElsewhere is called when the version of m's blob that its row records (blob_version)
// is missing or holds other bytes: when the blob store still serves m's genuine bytes from
// another version of the object, the row's blob_version is what was changed, and it is named
// (row-altered); named is false, and err returned as it came, otherwise.
func (a *auditor) versionElsewhere(ctx context.Context, m *catalog.Message, err error) (named bool, _ error) {
	n, gerr := a.readBlob(ctx, m.SHA256)
	switch {
	case gerr == nil && int64(n) == m.Size:
		a.add(Finding{Kind: RowAltered, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex),
			Detail: fmt.Sprintf("blob_version %q does not hold the message's bytes (%v); another version of its object does, intact", m.BlobVersion, err)})
		return true, nil
	case errors.Is(gerr, blob.ErrUnavailable):
		return false, fmt.Errorf("%w: %w", reader.ErrUnavailable, gerr)
	}
	return false, err
}

// readBlob reads the whole blob, which the store's reader verifies against sum.
func (a *auditor) readBlob(ctx context.Context, sum [32]byte) (uint64, error) {
	rc, err := a.cfg.Blobs.Get(ctx, sum)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, rc)
	a.mu.Lock()
	a.rep.BlobBytes += uint64(n)
	a.mu.Unlock()
	return uint64(n), err
}

// readMessage reads the whole of m's bytes through the reader, which verifies them against
// m's SHA-256: from its blob (the version the archive recorded, when the store keeps versions),
// or, for a message without a blob of its own (catalog.Message.ContainedIn), re-extracted from
// the blob of the message carrying it, itself verified; a carrying blob that is missing or
// altered, or that does not carry m, is reported against m as well. With keep, the bytes are
// kept there.
func (a *auditor) readMessage(ctx context.Context, m *catalog.Message, keep *[]byte) (uint64, error) {
	rc, err := a.rd.OpenMessage(ctx, m)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	var n int64
	if keep != nil {
		*keep, err = io.ReadAll(rc)
		n = int64(len(*keep))
	} else {
		n, err = io.Copy(io.Discard, rc)
	}
	a.mu.Lock()
	a.rep.BlobBytes += uint64(n)
	a.mu.Unlock()
	return uint64(n), err
}

// orphans walks the blob store for blobs the catalog does not know, checking their hashes too,
// and reports what the store's walk finds hiding or standing in for an object.
func (a *auditor) orphans(ctx context.Context) error {
	const page = 1000
	var pending [][32]byte
	check := func() error {
		if len(pending) == 0 {
			return nil
		}
		known, err := a.cat.Lookup(ctx, pending)
		if err != nil {
			return err
		}
		for _, s := range pending {
			if _, ok := known[s]; ok {
				continue
			}
			f := Finding{Kind: BlobOrphan, SHA256: s, LeafIndex: -1, Detail: "no catalog row refers to this blob"}
			if _, err := a.readBlob(ctx, s); errors.Is(err, blob.ErrIntegrity) {
				f.Kind, f.Detail = BlobAltered, "orphan blob whose bytes do not match its key: "+err.Error()
			} else if errors.Is(err, blob.ErrUnavailable) {
				return err
			}
			a.add(f)
		}
		pending = pending[:0]
		return nil
	}
	each := func(sum [32]byte) error {
		a.rep.Blobs++
		pending = append(pending, sum)
		if len(pending) >= page {
			return check()
		}
		return nil
	}
	var err error
	if w, ok := a.cfg.Blobs.(blob.AuditWalker); ok {
		err = w.AuditWalk(ctx, each, func(an blob.Anomaly) error {
			f := Finding{Kind: BlobIrregular, SHA256: an.SHA256, LeafIndex: -1, Detail: an.String()}
			if an.Kind == blob.AnomalyShadowed {
				f.Kind = BlobShadowed
			}
			a.add(f)
			return nil
		})
	} else {
		err = a.cfg.Blobs.Walk(ctx, each)
	}
	if err == nil {
		err = check()
	}
	if err != nil {
		return fmt.Errorf("audit: blobs: %w", err)
	}
	return nil
}
