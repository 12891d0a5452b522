package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/record"
	"github.com/pecarchive/pecarchive/tlog"
)

// VerifyOptions configure [Verify]. A nil *VerifyOptions verifies against the bundled key.
type VerifyOptions struct {
	// LogKey is the log's public verifier key, obtained independently of the bundle, or several
	// keys one per line (a log whose key was rotated: its checkpoints verify with one of them).
	// When empty, the checkpoint is checked against the key in the bundle, which proves only that
	// the bundle is consistent with itself; the result then carries a warning saying so.
	LogKey string
	// Workers is how many messages are verified at once; 0 means GOMAXPROCS.
	Workers int
	// Limits bound what is read (see [Open]).
	Limits Limits
	// Checkpoints are signed checkpoints of the log held outside the bundle (an auditor's or a
	// witness's copy): each must be signed by the log and extended by the bundle's tree, shown by
	// a consistency proof the bundle carries (one it cites) or by equal roots at equal sizes.
	Checkpoints [][]byte
}

// Key sources of [Result].KeySource.
const (
	KeyGiven   = "given"
	KeyBundled = "bundled"
)

// Result is the outcome of verifying a bundle.
type Result struct {
	// OK is true when every check held: Failures is empty.
	OK       bool
	Failures []Failure
	// Warnings are things that hold but that the reader must know (the checkpoint checked against
	// the bundled key, index reasons not re-checked).
	Warnings []string
	// KeySource says which key the checkpoint was checked against: KeyGiven or KeyBundled.
	KeySource string
	// Messages and Deliveries count what was checked; GivenCheckpoints the checkpoints of
	// VerifyOptions.Checkpoints that the bundle's tree extends.
	Messages         int
	Deliveries       int
	GivenCheckpoints int
	// Manifest is the bundle's manifest when it could be read.
	Manifest *Manifest
}

// Index reasons: the archive may have checked signers against a provider index the bundle does
// not carry, so the verifier cannot check these again; every other reason it recomputes.
var indexReasons = map[string]bool{
	smime.ReasonNotInIndex:        true,
	smime.ReasonIndexCertMismatch: true,
	smime.ReasonDomainNotManaged:  true,
}

// VerifyReaderAt opens the bundle in r (size bytes) and verifies it; a bundle the reader refuses
// is a failed Result naming why.
func VerifyReaderAt(ctx context.Context, r io.ReaderAt, size int64, opts *VerifyOptions) *Result {
	var lim Limits
	if opts != nil {
		lim = opts.Limits
	}
	rd, err := Open(r, size, &ReadOptions{Limits: lim})
	if err != nil {
		res := &Result{}
		res.fail(FailBundle, "bundle", "%v", err)
		return res.done()
	}
	return Verify(ctx, rd, opts)
}

// Verify checks everything the bundle read by rd says, offline, and names every failure.
func Verify(ctx context.Context, rd *Reader, opts *VerifyOptions) *Result {
	var o VerifyOptions
	if opts != nil {
		o = *opts
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	v := &verifier{rd: rd, opts: o, res: &Result{}, sums: map[string][32]byte{}, small: map[string][]byte{}}
	v.run(ctx)
	return v.res.done()
}

func (r *Result) fail(kind, subject, format string, args ...any) {
	r.Failures = append(r.Failures, newFailure(kind, subject, fmt.Sprintf(format, args...)))
}

func (r *Result) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, printable(fmt.Sprintf(format, args...), 2000))
}

func (r *Result) done() *Result {
	r.OK = len(r.Failures) == 0
	if r.Failures == nil {
		r.Failures = []Failure{}
	}
	if r.Warnings == nil {
		r.Warnings = []string{}
	}
	return r
}

type verifier struct {
	rd   *Reader
	opts VerifyOptions
	res  *Result
	m    *Manifest

	sums  map[string][32]byte // SHA-256 of every entry read
	small map[string][]byte   // bytes of the small entries (certificates, checkpoints, key)

	cp        log.Checkpoint
	cpOK      bool                       // cp parsed (its proofs can be checked)
	verifiers map[string]*smime.Verifier // by anchor-set SHA-256
	unsigned  *smime.Verifier            // for messages recorded as unsigned
	chains    map[string]bool            // chain SHA-256s whose file holds together
	msgs      map[string]*msgResult      // by SHA-256
}

// msgResult is what verifying one message found, merged in manifest order.
type msgResult struct {
	failures  []Failure
	warnings  []string
	postacert [32]byte // SHA-256 of the postacert.eml the bytes carry (zero when none)
	hashOK    bool
	valid     bool // the signature is valid as recomputed (and as claimed)
	trusted   bool // the signature is valid and trusted as recomputed (and as claimed)
	received  time.Time
	record    *Record // the manifest's record of the message (its first listing)
}

func (v *verifier) run(ctx context.Context) {
	m, ok := v.readManifest()
	if !ok {
		return
	}
	v.m = m
	v.res.Manifest = m
	v.res.Deliveries = len(m.Deliveries)
	// The report is rendered again from the manifest alone: on its own goroutine.
	report := make(chan []Failure, 1)
	go func() { report <- v.checkReport() }()

	// Every entry: its hash; the small ones kept for the checks below. Messages are hashed
	// as they are verified.
	for _, e := range v.rd.Entries() {
		if e.Name == NameMimetype || strings.HasPrefix(e.Name, dirMessages) && strings.HasSuffix(e.Name, ".eml") {
			continue
		}
		keep := strings.HasPrefix(e.Name, "certs/") || strings.HasPrefix(e.Name, dirCheckpoints) ||
			e.Name == NameCheckpoint || e.Name == NameLogKey
		v.hashEntry(e.Name, keep)
	}
	v.checkLog()
	v.checkCerts()
	v.checkMessages(ctx)
	v.checkFiles()
	v.checkDeliveries()
	v.res.Failures = append(v.res.Failures, <-report...)
}

// checkReport checks that report.html is the statement the manifest renders to, so that what a
// person reads says what the verified manifest says. It reads only the manifest and the report,
// and returns its failures (it runs beside the other checks).
func (v *verifier) checkReport() []Failure {
	got, err := v.rd.ReadFile(NameReport, v.rd.limits.MaxManifestSize)
	if err != nil {
		return nil // missing or unreadable: named by the file checks
	}
	m := *v.m
	i := slices.IndexFunc(m.Files, func(f File) bool { return f.Name == NameReport })
	if i < 0 {
		return []Failure{newFailure(FailClaim, NameReport, "not listed in "+NameManifest)}
	}
	m.Files = m.Files[:i] // the files written before it, which it lists
	var want bytes.Buffer
	if err := RenderReport(&want, &m); err != nil {
		return []Failure{newFailure(FailFile, NameReport, "the manifest does not render: "+err.Error())}
	}
	if !bytes.Equal(got, want.Bytes()) {
		return []Failure{newFailure(FailFile, NameReport, "it is not the statement "+NameManifest+" renders to: what it says differs from the manifest")}
	}
	return nil
}

// readManifest reads and decodes manifest.json.
func (v *verifier) readManifest() (*Manifest, bool) {
	data, err := v.rd.ReadFile(NameManifest, v.rd.limits.MaxManifestSize)
	if err != nil {
		v.res.fail(FailBundle, NameManifest, "%v", err)
		return nil, false
	}
	var m Manifest
	if err := decodeStrict(data, &m); err != nil {
		v.res.fail(FailBundle, NameManifest, "%v", err)
		return nil, false
	}
	if m.Format != Format {
		v.res.fail(FailBundle, NameManifest, "%v: format %.60q, this verifier reads %q", ErrVersion, m.Format, Format)
		return nil, false
	}
	return &m, true
}

// hashEntry computes the SHA-256 of an entry, keeping its bytes when keep is set.
func (v *verifier) hashEntry(name string, keep bool) {
	rc, err := v.rd.Open(name)
	if err != nil {
		v.res.fail(FailFile, name, "%v", err)
		return
	}
	defer rc.Close()
	h := sha256.New()
	var w io.Writer = h
	var buf bytes.Buffer
	if keep {
		w = io.MultiWriter(h, &buf)
	}
	if _, err := io.Copy(w, rc); err != nil {
		v.res.fail(FailFile, name, "%v", err)
		return
	}
	var sum [32]byte
	h.Sum(sum[:0])
	v.sums[name] = sum
	if keep {
		v.small[name] = buf.Bytes()
	}
}

// checkLog checks the log key, the checkpoint's signature and claims, and every earlier
// checkpoint with its consistency proof.
func (v *verifier) checkLog() {
	m := v.m
	if m.Log.KeyFile != NameLogKey || m.Log.Checkpoint.File != NameCheckpoint {
		v.res.fail(FailClaim, NameManifest, "log.key_file and log.checkpoint.file must be %q and %q", NameLogKey, NameCheckpoint)
	}
	// The keys: those given (a rotated log has several, one per line), else the bundle's own.
	bundled, hasKey := v.small[NameLogKey]
	var keys []note.Verifier
	if strings.TrimSpace(v.opts.LogKey) != "" {
		v.res.KeySource = KeyGiven
		var err error
		if keys, err = tlog.ParseVerifierKeys(v.opts.LogKey); err != nil || len(keys) == 0 {
			v.res.fail(FailSignature, "log key given", "%v", err)
		}
		if hasKey {
			if bk, err := tlog.NewVerifier(string(bundled)); err != nil || !slices.ContainsFunc(keys, func(k note.Verifier) bool {
				return k.Name() == bk.Name() && k.KeyHash() == bk.KeyHash()
			}) {
				v.res.fail(FailClaim, NameLogKey, "the bundle's log key differs from the keys given, which the checkpoint was checked against")
			}
		}
	} else if hasKey {
		v.res.KeySource = KeyBundled
		v.res.warn("the checkpoint was checked against the key inside the bundle (%s), which proves only that the bundle agrees with itself: check it again with --log-key and the log's public key obtained independently", NameLogKey)
		k, err := tlog.NewVerifier(string(bundled))
		if err != nil {
			v.res.fail(FailSignature, NameLogKey, "%v", err)
		} else {
			keys = []note.Verifier{k}
		}
	} else {
		v.res.fail(FailFile, NameLogKey, "%v", ErrMissing)
	}
	signed, ok := v.small[NameCheckpoint]
	if !ok {
		v.res.fail(FailFile, NameCheckpoint, "%v", ErrMissing)
		return
	}
	cp, err := tlog.ParseCheckpoint(signed)
	if err != nil {
		v.res.fail(FailSignature, NameCheckpoint, "%v", err)
		return
	}
	v.cp, v.cpOK = cp, true
	if len(keys) > 0 {
		if _, err := tlog.VerifyCheckpointAny(signed, keys); err != nil {
			v.res.fail(FailSignature, NameCheckpoint, "%v", err)
		}
	}
	if m.Log.Origin != cp.Origin || m.Log.Checkpoint.Size != cp.Size || m.Log.Checkpoint.Root != base64.StdEncoding.EncodeToString(cp.Hash) {
		v.res.fail(FailClaim, "log.checkpoint", "the manifest says origin %q, size %d, root %s; %s says origin %q, size %d, root %s",
			m.Log.Origin, m.Log.Checkpoint.Size, m.Log.Checkpoint.Root, NameCheckpoint, cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash))
	}
	// Earlier checkpoints, the bundle's and the caller's, are checked against the bundle's tree
	// as the archive's audit checks a checkpoint against the log (tlog.CheckAgainst): signed by
	// the log, and extended by the bundle's tree, shown by the bundle's consistency proofs.
	proofs := map[uint64][][]byte{}
	for _, e := range m.Log.Earlier {
		if p, err := decodeHashes(e.ConsistencyProof); err == nil {
			proofs[e.Size] = p
		}
	}
	tree := tlog.Tree{Size: cp.Size, Root: cp.Hash, Consistency: func(from uint64) ([][]byte, error) {
		p, ok := proofs[from]
		if !ok {
			return nil, fmt.Errorf("the bundle holds no consistency proof from size %d (cite that checkpoint when exporting: pecarchive export --checkpoint FILE)", from)
		}
		return p, nil
	}}
	check := func(data []byte) (log.Checkpoint, error) {
		if len(keys) == 0 {
			ecp, err := tlog.ParseCheckpoint(data)
			if err == nil {
				err = tlog.Extends(ecp, tree)
			}
			return ecp, err
		}
		return tlog.CheckAgainst(data, keys, tree)
	}
	for _, e := range m.Log.Earlier {
		subject := "checkpoint " + e.File
		if !strings.HasPrefix(e.File, dirCheckpoints) || e.File != CheckpointName(e.Size) {
			v.res.fail(FailClaim, subject, "an earlier checkpoint of size %d must be %s", e.Size, CheckpointName(e.Size))
			continue
		}
		data, ok := v.small[e.File]
		if !ok {
			v.res.fail(FailFile, e.File, "%v", ErrMissing)
			continue
		}
		if _, err := decodeHashes(e.ConsistencyProof); err != nil {
			v.res.fail(FailProof, "consistency "+e.File+" -> "+NameCheckpoint, "%v", err)
			continue
		}
		ecp, err := check(data)
		switch {
		case errors.Is(err, tlog.ErrInvalidCheckpoint), errors.Is(err, tlog.ErrInvalidKey):
			v.res.fail(FailSignature, e.File, "%v", err)
			continue
		case err != nil:
			v.res.fail(FailProof, "consistency "+e.File+" -> "+NameCheckpoint, "%v", err)
		}
		if ecp.Size != e.Size || base64.StdEncoding.EncodeToString(ecp.Hash) != e.Root || ecp.Origin != cp.Origin {
			v.res.fail(FailClaim, subject, "the manifest says size %d, root %s; the file says size %d, root %s, origin %q",
				e.Size, e.Root, ecp.Size, base64.StdEncoding.EncodeToString(ecp.Hash), ecp.Origin)
		}
	}
	for i, data := range v.opts.Checkpoints {
		subject := fmt.Sprintf("checkpoint given #%d", i+1)
		ecp, err := check(data)
		switch {
		case errors.Is(err, tlog.ErrInvalidCheckpoint), errors.Is(err, tlog.ErrInvalidKey):
			v.res.fail(FailSignature, subject, "%v", err)
		case errors.Is(err, tlog.ErrRollback):
			v.res.fail(FailProof, subject, "the bundle's checkpoint (size %d) is older than it (size %d): the bundle cannot show that its log extends it; ask for a bundle exported since", cp.Size, ecp.Size)
		case err != nil:
			v.res.fail(FailProof, subject, "%v", err)
		default:
			v.res.GivenCheckpoints++
		}
	}
}

// checkCerts checks every chain and anchor-set file against its identifier and prepares a
// signature verifier per anchor set.
func (v *verifier) checkCerts() {
	v.verifiers = map[string]*smime.Verifier{}
	v.chains = map[string]bool{}
	v.unsigned, _ = smime.New(smime.Config{})
	for _, s := range v.m.AnchorSets {
		data, _, ok := v.certFile("anchor set", s, AnchorsName, dirAnchors)
		if !ok {
			continue
		}
		ts, err := smime.ParsePEM(data)
		if err != nil {
			v.res.fail(FailFile, s.File, "%v", err)
			continue
		}
		if ts.ID() != s.SHA256 {
			v.res.fail(FailFile, s.File, "the anchors' identifier is %s, not %s", ts.ID(), s.SHA256)
			continue
		}
		sv, err := smime.New(smime.Config{Anchors: ts})
		if err != nil {
			v.res.fail(FailFile, s.File, "%v", err)
			continue
		}
		v.verifiers[s.SHA256] = sv
	}
	for _, s := range v.m.Chains {
		data, sum, ok := v.certFile("chain", s, ChainName, dirChains)
		if !ok {
			continue
		}
		der, err := pemDER(data)
		if err != nil {
			v.res.fail(FailFile, s.File, "%v", err)
			continue
		}
		if got := ChainID(der); got != sum {
			v.res.fail(FailFile, s.File, "the chain's identifier is %x, not %s", got, s.SHA256)
			continue
		}
		v.chains[s.SHA256] = true
	}
}

// certFile returns the bytes and identifier of the certificate set s (what: "chain" or "anchor
// set"), whose file must be named by its identifier (name, in folder dir); it names the failure
// and returns false when the name is wrong or the file missing.
func (v *verifier) certFile(what string, s CertSet, name func([32]byte) string, dir string) ([]byte, [32]byte, bool) {
	sum, err := parseSum(s.SHA256)
	if err != nil || s.File != name(sum) {
		v.res.fail(FailClaim, what+" "+s.SHA256, "its file must be %s", dir+"<sha256>.pem")
		return nil, sum, false
	}
	data, ok := v.small[s.File]
	if !ok {
		v.res.fail(FailFile, s.File, "%v", ErrMissing)
	}
	return data, sum, ok
}

// checkMessages verifies every message of the manifest, Workers at a time.
func (v *verifier) checkMessages(ctx context.Context) {
	msgs := v.m.Messages
	v.res.Messages = len(msgs)
	results := make([]*msgResult, len(msgs))
	seen := map[string]bool{}
	var wg sync.WaitGroup
	work := make(chan int)
	var mu sync.Mutex // guards v.sums
	for range min(v.opts.Workers, max(len(msgs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = v.checkMessage(ctx, &msgs[i], &mu)
			}
		}()
	}
	for i, msg := range msgs {
		if seen[msg.SHA256] {
			results[i] = &msgResult{failures: []Failure{newFailure(FailClaim, "message "+msg.SHA256, "listed twice")}}
			continue
		}
		seen[msg.SHA256] = true
		work <- i
	}
	close(work)
	wg.Wait()
	v.msgs = make(map[string]*msgResult, len(msgs))
	for i, r := range results {
		v.res.Failures = append(v.res.Failures, r.failures...)
		for _, w := range r.warnings {
			v.res.Warnings = append(v.res.Warnings, printable(w, 2000))
		}
		if _, dup := v.msgs[msgs[i].SHA256]; !dup {
			r.record = &msgs[i].Record
			v.msgs[msgs[i].SHA256] = r
		}
	}
	// A carried message: its carrier is in the bundle and carries exactly these bytes.
	for _, msg := range msgs {
		if msg.ContainedIn == "" {
			continue
		}
		subject := "message " + msg.SHA256
		carrier, ok := v.msgs[msg.ContainedIn]
		switch {
		case !ok:
			v.res.fail(FailClaim, subject, "contained_in names %s, which is not in the bundle", msg.ContainedIn)
		case carrier.hashOK && hexSum(carrier.postacert) != msg.SHA256:
			v.res.fail(FailClaim, subject, "contained_in names %s, whose postacert.eml has SHA-256 %s", msg.ContainedIn, optHex(carrier.postacert))
		}
	}
}

// checkMessage checks one message: its file, its record against what the bytes show, its
// signature as of signing time with the bundled anchors, its leaf and inclusion proof.
func (v *verifier) checkMessage(ctx context.Context, msg *Message, mu *sync.Mutex) *msgResult {
	r := &msgResult{}
	subject := "message " + msg.SHA256
	fail := func(kind, subj, format string, args ...any) {
		r.failures = append(r.failures, newFailure(kind, subj, fmt.Sprintf(format, args...)))
	}
	sum, err := parseSum(msg.SHA256)
	if err != nil {
		fail(FailClaim, subject, "%v", err)
		return r
	}
	if msg.File != MessageName(sum) {
		fail(FailClaim, subject, "its file must be %s, not %.100q", MessageName(sum), msg.File)
		return r
	}
	raw, err := v.rd.ReadFile(msg.File, v.rd.limits.MaxEntrySize)
	if err != nil {
		if errors.Is(err, ErrMissing) {
			fail(FailFile, msg.File, "%v", ErrMissing)
		} else {
			fail(FailFile, msg.File, "%v", err)
		}
		return r
	}
	got := sha256.Sum256(raw)
	mu.Lock()
	v.sums[msg.File] = got
	mu.Unlock()
	if got != sum {
		fail(FailFile, msg.File, "its bytes have SHA-256 %x, not the %s its name and the manifest give", got, msg.SHA256)
		return r
	}
	r.hashOK = true
	rec := msg.Record

	// What the archive recorded, and what the message's leaf commits to: the record (and the
	// first source, for a catalog/v2 leaf), recomputed here with package record.
	claimed, err := rec.message(sum, msg.Size)
	if err != nil {
		fail(FailClaim, subject, "the record: %v", err)
		return r
	}
	r.received = claimed.ReceivedAt
	first, err := msg.FirstSource.source()
	if err != nil {
		fail(FailClaim, subject, "first_source: %v", err)
	}
	leaf := tlog.Leaf{Kind: tlog.KindMessage, SHA256: sum, Time: time.Unix(msg.Leaf.Time, 0).UTC(), Extra: msg.Leaf.Extra}
	if err := leaf.Validate(); err != nil {
		fail(FailClaim, subject, "leaf: %v", err)
		return r
	}
	if err := record.CheckMessageLeaf(leaf, &claimed, &first); err != nil {
		fail(FailClaim, subject, "%v", err)
	}

	// What the bytes show, described as the archive describes a message it stores, with the
	// signature verified as of its signing time (bounded by the time the archive received the
	// message, as the archive verified it) with the bundled anchors only.
	pm, perr := pec.Parse(raw, &pec.Options{Limits: pec.Limits{MaxSize: max(len(raw), 1)}})
	if pm == nil {
		pm = &pec.Message{Kind: pec.KindNotPEC}
	}
	if len(pm.Postacert) > 0 {
		r.postacert = sha256.Sum256(pm.Postacert)
	}
	var vd *smime.Verdict
	vd, r.valid, r.trusted = v.checkSignature(ctx, msg, pm, fail, &r.warnings)
	shown := record.Describe(sum, int64(len(raw)), pm, perr, vd)
	diffs, note := compareRecord(&claimed, &shown)
	for _, d := range diffs {
		fail(FailClaim, subject, "%s", d)
	}
	if note != "" {
		r.warnings = append(r.warnings, subject+": "+note)
	}

	// The leaf's inclusion in the checkpoint's tree.
	if !v.cpOK {
		return r
	}
	p, err := decodeHashes(msg.InclusionProof)
	if err == nil {
		err = tlog.VerifyInclusion(tlog.LeafHash(leaf.Marshal()), msg.Leaf.Index, v.cp.Size, p, v.cp.Hash)
	}
	if err != nil {
		fail(FailProof, fmt.Sprintf("inclusion of %s (leaf %d)", msg.SHA256, msg.Leaf.Index), "%v", err)
	}
	return r
}

// checkSignature re-verifies the message's signature and compares the verdict with the record's.
// It returns whether the signature is valid, and valid and trusted, as recomputed and as claimed.
func (v *verifier) checkSignature(ctx context.Context, msg *Message, pm *pec.Message, fail func(kind, subj, format string, args ...any), warnings *[]string) (vd *smime.Verdict, valid, trusted bool) {
	rec := msg.Record
	claim := rec.Signature
	subject := "signature of " + msg.SHA256
	sv, ok := v.verifiers[rec.AnchorsSHA256]
	switch {
	case ok:
	case !claim.Present && rec.AnchorsSHA256 == "":
		// Nothing was verified, so no anchors were recorded: the outcome of verifying an
		// unsigned message does not depend on the anchors.
		sv = v.unsigned
	default:
		fail(FailClaim, subject, "the record names anchor set %.64q, which the bundle does not hold", rec.AnchorsSHA256)
		return nil, false, false
	}
	rt, _ := parseTime(rec.ReceivedAt)
	verdict := sv.VerifyMessage(ctx, pm, &smime.VerifyOptions{ReceivedAt: rt})
	vd = &verdict
	if claim.Valid && !vd.Valid {
		fail(FailSignature, subject, "the signature does not verify: %s", strings.Join(vd.Reasons, ", "))
	}
	// Reasons from the provider index the archive may have used cannot be recomputed here.
	var claimed, indexOnly []string
	for _, reason := range claim.Reasons {
		if indexReasons[reason] {
			indexOnly = append(indexOnly, reason)
		} else {
			claimed = append(claimed, reason)
		}
	}
	valid = vd.Valid && claim.Valid
	trusted = vd.Trusted && claim.Trusted
	switch {
	case claim.Trusted && !vd.Trusted && vd.Valid:
		fail(FailSignature, subject, "the signer is not trusted as of %s with anchor set %s: %s",
			FormatTime(vd.VerifiedAt), rec.AnchorsSHA256, strings.Join(vd.Reasons, ", "))
	case !claim.Trusted && vd.Trusted && len(indexOnly) == 0:
		fail(FailClaim, subject, "the record says not trusted (%s); it verifies and is trusted", strings.Join(claim.Reasons, ", "))
	case claim.Valid != vd.Valid && !(claim.Valid && !vd.Valid):
		fail(FailClaim, subject, "the record says valid=%t, the signature verifies", claim.Valid)
	}
	if len(indexOnly) > 0 {
		*warnings = append(*warnings, fmt.Sprintf("%s: the archive's verdict used a provider index the bundle does not hold; its index reasons (%s) were not checked again",
			subject, strings.Join(indexOnly, ", ")))
	}
	if claim.Present != vd.Present {
		fail(FailClaim, subject, "the record says present=%t; the message %s a signature", claim.Present, map[bool]string{true: "carries", false: "carries no"}[vd.Present])
	}
	if !slices.Equal(claimed, vd.Reasons) {
		fail(FailClaim, subject, "the record gives the reasons [%s]; verification gives [%s]", strings.Join(claimed, ", "), strings.Join(vd.Reasons, ", "))
	}
	cmp := func(field, claimed, got string) {
		if claimed != got {
			fail(FailClaim, subject, "%s: the record says %.200q, verification gives %.200q", field, claimed, got)
		}
	}
	cmp("digest", claim.Digest, vd.Digest)
	cmp("signer", claim.Signer, vd.Signer)
	cmp("signer_email", claim.SignerEmail, strings.ToLower(strings.TrimSpace(vd.SignerEmail)))
	if t, err := parseTime(claim.SignedAt); err != nil || !t.Equal(vd.SignedAt.Truncate(time.Microsecond)) {
		fail(FailClaim, subject, "signed_at: the record says %.60q, the signature says %s", claim.SignedAt, FormatTime(vd.SignedAt))
	}
	if t, err := parseTime(claim.VerifiedAt); err != nil || !t.Equal(vd.VerifiedAt.Truncate(time.Microsecond)) {
		fail(FailClaim, subject, "verified_at: the record says %.60q, verification is as of %s", claim.VerifiedAt, FormatTime(vd.VerifiedAt))
	}
	if vd.Present {
		chain := ChainID(vd.ChainDER())
		switch {
		case len(vd.Chain) == 0 && rec.ChainSHA256 == "":
		case hexSum(chain) != rec.ChainSHA256:
			fail(FailClaim, subject, "chain_sha256: the record says %.64q, the signer's chain is %x", rec.ChainSHA256, chain)
		case !v.chains[rec.ChainSHA256]:
			fail(FailClaim, subject, "the record's chain %s is not in the bundle", rec.ChainSHA256)
		}
	}
	return vd, valid, trusted
}

// checkFiles compares the entries with the two manifests: every data entry is listed in both,
// with the hash its bytes have, and nothing is listed that the bundle lacks.
func (v *verifier) checkFiles() {
	asicData, err := v.rd.ReadFile(NameASiCManifest, v.rd.limits.MaxManifestSize)
	var refs []asicRef
	if err == nil {
		refs, err = parseASiCManifest(asicData)
	}
	if err != nil {
		v.res.fail(FailFile, NameASiCManifest, "%v", err)
	}
	listed := map[string]bool{}
	for _, ref := range refs {
		listed[ref.URI] = true
		got, ok := v.sums[ref.URI]
		switch {
		case !ok && v.isEntry(ref.URI):
			// unreadable: already reported
		case !ok:
			v.res.fail(FailFile, ref.URI, "listed in %s but not in the bundle", NameASiCManifest)
		case got != ref.SHA256:
			v.res.fail(FailFile, ref.URI, "its SHA-256 is %x; %s says %x", got, NameASiCManifest, ref.SHA256)
		}
	}
	files := map[string]bool{}
	for _, f := range v.m.Files {
		if files[f.Name] {
			v.res.fail(FailClaim, f.Name, "listed twice in %s", NameManifest)
			continue
		}
		files[f.Name] = true
		got, ok := v.sums[f.Name]
		e, isEntry := v.rd.Lookup(f.Name)
		switch {
		case !isEntry:
			v.res.fail(FailFile, f.Name, "listed in %s but not in the bundle", NameManifest)
		case !ok:
			// unreadable: already reported
		case hexSum(got) != f.SHA256:
			v.res.fail(FailFile, f.Name, "its SHA-256 is %x; %s says %s", got, NameManifest, f.SHA256)
		case e.Size != f.Size:
			v.res.fail(FailFile, f.Name, "it has %d bytes; %s says %d", e.Size, NameManifest, f.Size)
		}
	}
	for _, e := range v.rd.Entries() {
		switch {
		case e.Name == NameMimetype || e.Name == NameASiCManifest:
			continue
		case !listed[e.Name] && e.Name != NameASiCManifest && refs != nil:
			v.res.fail(FailFile, e.Name, "not listed in %s: a file the bundle should not hold", NameASiCManifest)
		}
		if e.Name != NameManifest && !files[e.Name] {
			v.res.fail(FailFile, e.Name, "not listed in %s: a file the bundle should not hold", NameManifest)
		}
	}
	if _, ok := v.rd.Lookup(NameReport); !ok {
		v.res.fail(FailFile, NameReport, "%v", ErrMissing)
	}
	// The files the manifest's own structure names are exactly its files (and the report).
	named := map[string]bool{NameReport: true}
	for _, name := range v.namedFiles() {
		named[name] = true
		if !files[name] {
			v.res.fail(FailClaim, name, "named by the manifest but not listed in its files")
		}
	}
	for _, f := range v.m.Files {
		if !named[f.Name] {
			v.res.fail(FailFile, f.Name, "listed in %s but no message, certificate set or checkpoint of it: a file the bundle should not hold", NameManifest)
		}
	}
}

func (v *verifier) isEntry(name string) bool {
	_, ok := v.rd.Lookup(name)
	return ok
}

// namedFiles returns every file the manifest refers to outside its files list.
func (v *verifier) namedFiles() []string {
	m := v.m
	out := []string{NameCheckpoint, NameLogKey}
	for _, e := range m.Log.Earlier {
		out = append(out, e.File)
	}
	for _, s := range m.Chains {
		out = append(out, s.File)
	}
	for _, s := range m.AnchorSets {
		out = append(out, s.File)
	}
	for _, msg := range m.Messages {
		out = append(out, msg.File)
	}
	return out
}

// checkDeliveries re-derives every delivery claim from the bundle's messages with the rule the
// query service answered with ([DeriveDeliveries], verdict.Conversation), each message's
// signature counting only as far as it verified here, and names every difference.
func (v *verifier) checkDeliveries() {
	// The messages of each Message-ID (their own or their correlation key), grouped once:
	// DeriveDeliveries keeps of what it is given those of the Message-ID it derives for.
	byKey := map[string][]Message{}
	for _, msg := range v.m.Messages {
		mr, ok := v.msgs[msg.SHA256]
		if !ok {
			continue
		}
		sig := &msg.Record.Signature
		sig.Valid, sig.Trusted = sig.Valid && mr.hashOK && mr.valid, sig.Trusted && mr.hashOK && mr.trusted
		own := record.MsgID(msg.Record.MessageID)
		byKey[own] = append(byKey[own], msg)
		if ref := msg.Record.RefMsgID; ref != own {
			byKey[ref] = append(byKey[ref], msg)
		}
	}
	// The claims about one Message-ID, one per sending, in the order derived (newest first).
	byMsgID := map[string][]int{}
	var order []string
	for i, d := range v.m.Deliveries {
		k := record.MsgID(d.MsgID)
		if _, ok := byMsgID[k]; !ok {
			order = append(order, k)
		}
		byMsgID[k] = append(byMsgID[k], i)
	}
	for _, k := range order {
		derived := DeriveDeliveries(k, byKey[k])
		claimed := byMsgID[k]
		if len(claimed) != len(derived) {
			var ids []string
			for _, g := range derived {
				ids = append(ids, g.PECID)
			}
			v.res.fail(FailClaim, "delivery "+v.m.Deliveries[claimed[0]].MsgID, "the manifest makes %d claims about it; its messages prove %d sendings (PEC ids %q)",
				len(claimed), len(derived), ids)
		}
		for j, i := range claimed {
			g := Delivery{Recipients: []Recipient{}}
			if j < len(derived) {
				g = derived[j]
			}
			v.checkDelivery(v.m.Deliveries[i], g)
		}
	}
}

// checkDelivery compares the claim d with the claim g derived again from the bundle's messages.
func (v *verifier) checkDelivery(d, g Delivery) {
	subject := "delivery " + d.MsgID
	if d.PECID != "" {
		subject += " (" + d.PECID + ")"
	}
	claim := func(field, claimed, got string) {
		if claimed != got {
			v.res.fail(FailClaim, subject, "%s: the manifest says %.200q, its messages give %.200q", field, claimed, got)
		}
	}
	claim("msgid", d.MsgID, g.MsgID)
	claim("pec_id", d.PECID, g.PECID)
	claim("subject", d.Subject, g.Subject)
	claim("sender", d.Sender, g.Sender)
	if !sameTime(d.SentAt, g.SentAt) {
		claim("sent_at", d.SentAt, g.SentAt)
	}
	claim("sha256", d.SHA256, g.SHA256)
	if len(d.Recipients) != len(g.Recipients) {
		var got []string
		for _, r := range g.Recipients {
			got = append(got, r.Address)
		}
		v.res.fail(FailClaim, subject, "the manifest names %d recipients; the receipts name %d (%s)", len(d.Recipients), len(g.Recipients), strings.Join(got, ", "))
	}
	for i, r := range d.Recipients {
		rsub := subject + " recipient " + r.Address
		if !slices.Contains(Verdicts, r.Verdict) {
			v.res.fail(FailClaim, rsub, "verdict %.40q is not one of %s", r.Verdict, strings.Join(Verdicts, ", "))
		}
		for _, s := range append(slices.Clone(r.Receipts), r.Conflicts...) {
			if _, ok := v.msgs[s]; !ok {
				v.res.fail(FailClaim, rsub, "receipt %.64q is not in the bundle", s)
			}
		}
		if r.Verdict == VerdictDelivered {
			v.checkDelivered(d, r, rsub)
		}
		if i >= len(g.Recipients) {
			continue
		}
		gr := g.Recipients[i]
		if r.Address != gr.Address {
			v.res.fail(FailClaim, rsub, "the receipts give recipient %q in this place", gr.Address)
			continue
		}
		if r.Verdict != gr.Verdict {
			v.res.fail(FailClaim, rsub, "the manifest says %s; its receipts give %s: %s", r.Verdict, gr.Verdict, gr.ExplanationEN)
			continue
		}
		rclaim := func(field, claimed, got string) {
			if claimed != got {
				v.res.fail(FailClaim, rsub, "%s: the manifest says %.300q, its receipts give %.300q", field, claimed, got)
			}
		}
		rclaim("deciding", r.Deciding, gr.Deciding)
		if !sameTime(r.At, gr.At) {
			rclaim("at", r.At, gr.At)
		}
		rclaim("receipts", strings.Join(r.Receipts, " "), strings.Join(gr.Receipts, " "))
		rclaim("conflicts", strings.Join(r.Conflicts, " "), strings.Join(gr.Conflicts, " "))
		rclaim("explanation_it", r.ExplanationIT, gr.ExplanationIT)
		rclaim("explanation_en", r.ExplanationEN, gr.ExplanationEN)
	}
}

// checkDelivered checks the one rule no bundle may bend: DELIVERED rests on a valid and trusted
// delivery receipt (avvenuta-consegna) for that very recipient about that very message.
func (v *verifier) checkDelivered(d Delivery, r Recipient, subject string) {
	mr, ok := v.msgs[r.Deciding]
	if r.Deciding == "" || !ok {
		v.res.fail(FailClaim, subject, "DELIVERED without a deciding receipt in the bundle")
		return
	}
	rec := mr.record
	switch {
	case !mr.trusted:
		v.res.fail(FailClaim, subject, "DELIVERED rests on receipt %s, whose signature is not valid and trusted", r.Deciding)
	case rec.Kind != string(pec.KindAvvenutaConsegna) || rec.Consegna != record.Addr(r.Address) || rec.OrigMsgID != record.MsgID(d.MsgID):
		v.res.fail(FailClaim, subject, "DELIVERED rests on receipt %s (kind %s, consegna %q, about %q), not a delivery receipt for this recipient and message",
			r.Deciding, rec.Kind, rec.Consegna, rec.OrigMsgID)
	}
}

// pemDER returns the DER of the CERTIFICATE blocks of data, which must hold nothing else.
func pemDER(data []byte) ([][]byte, error) {
	var out [][]byte
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("evidence: a %q block among the certificates", b.Type)
		}
		out = append(out, b.Bytes)
	}
	if len(bytes.TrimSpace(rest)) != 0 || len(out) == 0 {
		return nil, errors.New("evidence: not a file of PEM certificates")
	}
	return out, nil
}

// sameTime reports whether two manifest times are the same instant with the same offset (or both
// unknown), however each is spelt.
func sameTime(a, b string) bool {
	ta, err1 := parseTime(a)
	tb, err2 := parseTime(b)
	if err1 != nil || err2 != nil {
		return false
	}
	_, oa := ta.Zone()
	_, ob := tb.Zone()
	return ta.Equal(tb) && oa == ob
}
