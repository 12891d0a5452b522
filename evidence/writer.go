package evidence

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pecarchive/pecarchive/record"
	"github.com/pecarchive/pecarchive/tlog"
)

// Content supplies the bytes of the messages a bundle holds, so a bundle is streamed from
// wherever they are kept (the archive's blob store, memory in tests).
type Content interface {
	// OpenMessage returns the exact bytes of the message whose SHA-256 is sum. For a message
	// carried inside another one (Message.ContainedIn) it returns the carried bytes.
	OpenMessage(ctx context.Context, sum [32]byte) (io.ReadCloser, error)
}

// Bundle is what a bundle holds, except the message bytes ([Content] supplies them).
type Bundle struct {
	// CreatedAt is when the bundle is made (default: now).
	CreatedAt time.Time
	// ExportedBy names who asked for it.
	ExportedBy string
	Selectors  []Selector
	// Checkpoint is the signed checkpoint (note) every inclusion proof is against, and LogKey the
	// log's public verifier key.
	Checkpoint []byte
	LogKey     string
	// Earlier are older signed checkpoints the bundle cites, each with its consistency proof to
	// Checkpoint.
	Earlier []Cited
	// Messages are the messages with their records, leaves and proofs; File is set by [Write].
	Messages []Message
	// Chains and AnchorSets are the certificate sets the records name (by the SHA-256 of their
	// concatenated DER; anchor sets are sorted and de-duplicated by Write).
	Chains     []Certs
	AnchorSets []Certs
	Deliveries []Delivery
}

// Cited is an earlier checkpoint and the consistency proof from it to the bundle's checkpoint.
type Cited struct {
	Checkpoint []byte
	Proof      [][]byte
}

// Certs is a certificate set as DER certificates.
type Certs struct {
	DER   [][]byte
	Label string
}

// ChainID returns the identifier of a signer chain: SHA-256 over the DER certificates in order
// (record.ChainID).
func ChainID(der [][]byte) [32]byte { return record.ChainID(der) }

// AnchorsID returns the identifier of a trust-anchor set (pec/smime TrustStore.ID): SHA-256 over
// the distinct DER certificates in ascending byte order (record.AnchorSet).
func AnchorsID(der [][]byte) [32]byte {
	_, id := record.AnchorSet(der)
	return id
}

func sortedSet(der [][]byte) [][]byte {
	sorted, _ := record.AnchorSet(der)
	return sorted
}

// Write writes the bundle b to w as a ZIP, streaming: each message is copied from c into its
// entry while its SHA-256 is computed, and nothing but the manifest and the report is held in
// memory, whatever the size of the messages. It checks what it writes: a message whose bytes do
// not hash to its name or differ in size from its record, a record naming a certificate set the
// bundle lacks, a checkpoint that does not parse, or a verdict naming a receipt the bundle lacks
// is an error wrapping [ErrInvalid]; w then holds a partial archive that must be discarded. It
// returns the manifest it wrote.
//
// Every file but the messages is known before the first byte is written, and so are the
// messages' names and sizes (a message's name is its SHA-256): the report and the manifest are
// rendered and compressed on another goroutine while the messages stream.
func Write(ctx context.Context, w io.Writer, b *Bundle, c Content) (*Manifest, error) {
	m, chains, anchors, err := b.manifest()
	if err != nil {
		return nil, err
	}
	type small struct {
		name, typ string
		data      []byte
	}
	var smalls []small
	for i, s := range chains {
		smalls = append(smalls, small{m.Chains[i].File, TypeCerts, pemCerts(s.DER)})
	}
	for i, s := range anchors {
		smalls = append(smalls, small{m.AnchorSets[i].File, TypeCerts, pemCerts(s.DER)})
	}
	for i, e := range b.Earlier {
		smalls = append(smalls, small{m.Log.Earlier[i].File, TypeCheckpoint, e.Checkpoint})
	}
	smalls = append(smalls, small{NameCheckpoint, TypeCheckpoint, b.Checkpoint},
		small{NameLogKey, TypeKey, []byte(strings.TrimSpace(b.LogKey) + "\n")})
	files := make([]File, 0, len(m.Messages)+len(smalls)+2)
	for _, msg := range m.Messages {
		files = append(files, File{Name: msg.File, SHA256: msg.SHA256, Size: msg.Size, Type: TypeMessage})
	}
	for _, sm := range smalls {
		sum := sha256.Sum256(sm.data)
		files = append(files, File{Name: sm.name, SHA256: hexSum(sum), Size: int64(len(sm.data)), Type: sm.typ})
	}

	// The report lists the files before it; the manifest lists the report too.
	type rendered struct {
		report, manifest compressed
		files            []File // the files the manifest lists: all but itself and META-INF
		err              error
	}
	ready := make(chan rendered, 1)
	view := *m
	go func() {
		var r rendered
		view.Files = files
		if r.report, r.err = compress(func(w io.Writer) error { return RenderReport(w, &view) }); r.err != nil {
			ready <- r
			return
		}
		r.files = append(slices.Clip(files), File{Name: NameReport, SHA256: hexSum(r.report.sum), Size: r.report.size, Type: TypeReport})
		view.Files = r.files
		r.manifest, r.err = compress(func(w io.Writer) error {
			e := json.NewEncoder(w)
			e.SetIndent("", " ")
			return e.Encode(&view)
		})
		ready <- r
	}()

	bw := newBundleWriter(w, b.createdAt())
	// Deflate at its fastest level: mail compresses little better at higher levels (base64
	// attachments hardly at all) and a bundle is written once per request, on the request's time.
	UseCompressor(bw.zw)
	if err := bw.zw.SetComment("mimetype=" + MediaType); err != nil {
		return nil, err
	}
	if err := bw.mimetype(); err != nil {
		return nil, err
	}
	for i := range m.Messages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := bw.message(ctx, &m.Messages[i], c); err != nil {
			return nil, err
		}
	}
	for _, sm := range smalls {
		if err := bw.file(sm.name, sm.data); err != nil {
			return nil, err
		}
	}
	r := <-ready
	if r.err != nil {
		return nil, fmt.Errorf("evidence: write: %w", r.err)
	}
	if err := bw.raw(NameReport, r.report); err != nil {
		return nil, err
	}
	if err := bw.raw(NameManifest, r.manifest); err != nil {
		return nil, err
	}
	refs := make([]asicRef, 0, len(r.files)+1)
	for _, f := range append(slices.Clip(r.files), File{Name: NameManifest, SHA256: hexSum(r.manifest.sum), Type: TypeJSON}) {
		sum, _ := parseSum(f.SHA256)
		refs = append(refs, asicRef{URI: f.Name, MimeType: f.Type, SHA256: sum})
	}
	if err := bw.stream(NameASiCManifest, func(w io.Writer) error { return writeASiCManifest(w, refs) }); err != nil {
		return nil, err
	}
	if err := bw.zw.Close(); err != nil {
		return nil, fmt.Errorf("evidence: write: %w", err)
	}
	m.Files = r.files
	return m, nil
}

// compressed is an entry deflated ahead of writing.
type compressed struct {
	data []byte // deflated
	crc  uint32
	size int64
	sum  [32]byte
}

// compress deflates what fn writes, as the entries of a bundle are deflated.
func compress(fn func(io.Writer) error) (compressed, error) {
	var out compressed
	var buf bytes.Buffer
	fw, err := newFastFlate(&buf)
	if err != nil {
		return out, err
	}
	h := sha256.New()
	crc := crc32.NewIEEE()
	n := &hashCounter{h: h}
	bw := bufio.NewWriterSize(io.MultiWriter(fw, crc, n), 64<<10)
	if err := fn(bw); err != nil {
		return out, err
	}
	if err := bw.Flush(); err != nil {
		return out, err
	}
	if err := fw.Close(); err != nil {
		return out, err
	}
	out.data, out.crc, out.size = buf.Bytes(), crc.Sum32(), n.n
	h.Sum(out.sum[:0])
	return out, nil
}

func (b *Bundle) createdAt() time.Time {
	if b.CreatedAt.IsZero() {
		return time.Now().UTC().Truncate(time.Second)
	}
	return b.CreatedAt
}

// manifest builds the manifest of b (without Files) and checks that it holds together.
func (b *Bundle) manifest() (m *Manifest, chains, anchors []Certs, err error) {
	bad := func(format string, args ...any) (*Manifest, []Certs, []Certs, error) {
		return nil, nil, nil, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	cp, err := tlog.ParseCheckpoint(b.Checkpoint)
	if err != nil {
		return bad("checkpoint: %v", err)
	}
	if _, err := tlog.NewVerifier(b.LogKey); err != nil {
		return bad("log key: %v", err)
	}
	m = &Manifest{
		Format:     Format,
		CreatedAt:  FormatTime(b.createdAt()),
		ExportedBy: b.ExportedBy,
		Selectors:  nonNil(b.Selectors),
		Log: Log{
			Origin:     cp.Origin,
			KeyFile:    NameLogKey,
			Checkpoint: CheckpointRef{File: NameCheckpoint, Size: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Hash)},
			Earlier:    []EarlierCheckpoint{},
		},
		Files:      []File{},
		Messages:   make([]Message, len(b.Messages)),
		Chains:     []CertSet{},
		AnchorSets: []CertSet{},
		Deliveries: make([]Delivery, len(b.Deliveries)),
	}
	seenCP := map[uint64]bool{}
	for i, e := range b.Earlier {
		ecp, err := tlog.ParseCheckpoint(e.Checkpoint)
		if err != nil {
			return bad("earlier checkpoint %d: %v", i, err)
		}
		if ecp.Size >= cp.Size || seenCP[ecp.Size] {
			return bad("earlier checkpoint of size %d: not smaller than %d, or cited twice", ecp.Size, cp.Size)
		}
		seenCP[ecp.Size] = true
		m.Log.Earlier = append(m.Log.Earlier, EarlierCheckpoint{
			CheckpointRef:    CheckpointRef{File: CheckpointName(ecp.Size), Size: ecp.Size, Root: base64.StdEncoding.EncodeToString(ecp.Hash)},
			ConsistencyProof: EncodeHashes(e.Proof),
		})
	}
	sets := func(in []Certs, id func([][]byte) [32]byte, name func([32]byte) string, sorted bool) ([]Certs, []CertSet, map[string]bool, error) {
		have := map[string]bool{}
		var outC []Certs
		outS := []CertSet{}
		for _, s := range in {
			der := s.DER
			if sorted {
				der = sortedSet(der)
			}
			if len(der) == 0 {
				return nil, nil, nil, fmt.Errorf("an empty certificate set")
			}
			for _, c := range der {
				if _, err := x509.ParseCertificate(c); err != nil {
					return nil, nil, nil, fmt.Errorf("certificate set %q: %v", s.Label, err)
				}
			}
			sum := id(der)
			if have[hexSum(sum)] {
				continue
			}
			have[hexSum(sum)] = true
			outC = append(outC, Certs{DER: der, Label: s.Label})
			outS = append(outS, CertSet{SHA256: hexSum(sum), File: name(sum), Label: s.Label})
		}
		return outC, outS, have, nil
	}
	var haveChain, haveAnchors map[string]bool
	chains, m.Chains, haveChain, err = sets(b.Chains, ChainID, ChainName, false)
	if err != nil {
		return bad("chains: %v", err)
	}
	anchors, m.AnchorSets, haveAnchors, err = sets(b.AnchorSets, AnchorsID, AnchorsName, true)
	if err != nil {
		return bad("anchor sets: %v", err)
	}
	have := map[string]bool{}
	for i, msg := range b.Messages {
		sum, err := parseSum(msg.SHA256)
		if err != nil {
			return bad("message %d: %v", i, err)
		}
		if have[msg.SHA256] {
			return bad("message %s is listed twice", msg.SHA256)
		}
		have[msg.SHA256] = true
		if msg.Leaf.Index >= cp.Size {
			return bad("message %s: leaf %d is not in the checkpoint's tree of size %d", msg.SHA256, msg.Leaf.Index, cp.Size)
		}
		r := msg.Record
		if r.ChainSHA256 != "" && !haveChain[r.ChainSHA256] {
			return bad("message %s: its chain %s is not in the bundle", msg.SHA256, r.ChainSHA256)
		}
		if r.AnchorsSHA256 != "" && !haveAnchors[r.AnchorsSHA256] {
			return bad("message %s: its anchor set %s is not in the bundle", msg.SHA256, r.AnchorsSHA256)
		}
		msg.File = MessageName(sum)
		msg.InclusionProof = nonNil(msg.InclusionProof)
		msg.Record = r.nonNil()
		m.Messages[i] = msg
	}
	for _, msg := range m.Messages {
		if msg.ContainedIn != "" && !have[msg.ContainedIn] {
			return bad("message %s: the message carrying it, %s, is not in the bundle", msg.SHA256, msg.ContainedIn)
		}
	}
	// The deliveries, copied down to their lists (a receipt may be added to them).
	for i, d := range b.Deliveries {
		if d.SHA256 != "" && !have[d.SHA256] {
			return bad("delivery %q: message %s is not in the bundle", d.MsgID, d.SHA256)
		}
		d.Recipients = nonNil(slices.Clone(d.Recipients))
		for j := range d.Recipients {
			r := &d.Recipients[j]
			r.Receipts = nonNil(slices.Clone(r.Receipts))
			r.Conflicts = nonNil(slices.Clone(r.Conflicts))
			if r.Deciding != "" && !slices.Contains(r.Receipts, r.Deciding) {
				r.Receipts = append(r.Receipts, r.Deciding)
			}
			for _, s := range append(slices.Clone(r.Receipts), r.Conflicts...) {
				if !have[s] {
					return bad("delivery %q recipient %q: receipt %s is not in the bundle", d.MsgID, r.Address, s)
				}
			}
		}
		m.Deliveries[i] = d
	}
	return m, chains, anchors, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (r Record) nonNil() Record {
	r.Recipients = nonNil(r.Recipients)
	r.RecipientTypes = nonNil(r.RecipientTypes)
	r.Problems = nonNil(r.Problems)
	r.Signature.Reasons = nonNil(r.Signature.Reasons)
	r.Signature.Details = nonNil(r.Signature.Details)
	return r
}

func pemCerts(der [][]byte) []byte {
	var b bytes.Buffer
	for _, c := range der {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c})
	}
	return b.Bytes()
}

// bundleWriter writes the entries of a bundle.
type bundleWriter struct {
	zw  *zip.Writer
	mod time.Time
	// dosDate and dosTime are mod in the MS-DOS form of ZIP headers, for the entries written
	// with CreateRaw (else they would show 1980-00-00 in ZIP tools).
	dosDate, dosTime uint16
}

func newBundleWriter(w io.Writer, mod time.Time) *bundleWriter {
	t := mod.UTC()
	bw := &bundleWriter{zw: zip.NewWriter(w), mod: t}
	if t.Year() >= 1980 && t.Year() <= 2107 {
		bw.dosDate = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
		bw.dosTime = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	}
	return bw
}

func (bw *bundleWriter) mimetype() error {
	fh := &zip.FileHeader{
		Name:               NameMimetype,
		Method:             zip.Store,
		ModifiedDate:       bw.dosDate,
		ModifiedTime:       bw.dosTime,
		CRC32:              crc32.ChecksumIEEE([]byte(MediaType)),
		CompressedSize64:   uint64(len(MediaType)),
		UncompressedSize64: uint64(len(MediaType)),
	}
	w, err := bw.zw.CreateRaw(fh)
	if err != nil {
		return fmt.Errorf("evidence: write: %w", err)
	}
	_, err = io.WriteString(w, MediaType)
	return err
}

// entry starts an entry and returns a writer that hashes and counts what goes into it, and a
// function that returns the SHA-256 and size once it is written.
func (bw *bundleWriter) entry(name string) (io.Writer, func() ([32]byte, int64), error) {
	w, err := bw.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: bw.mod.UTC()})
	if err != nil {
		return nil, nil, fmt.Errorf("evidence: write %s: %w", name, err)
	}
	h := &hashCounter{h: sha256.New()}
	done := func() ([32]byte, int64) {
		var sum [32]byte
		h.h.Sum(sum[:0])
		return sum, h.n
	}
	return io.MultiWriter(w, h), done, nil
}

func (bw *bundleWriter) file(name string, data []byte) error {
	w, _, err := bw.entry(name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("evidence: write %s: %w", name, err)
	}
	return nil
}

// raw writes an entry deflated ahead (sizes and CRC in its header, no data descriptor).
func (bw *bundleWriter) raw(name string, c compressed) error {
	// CreateRaw writes the header as given: the MS-DOS time is set here (CreateHeader derives
	// it from Modified, and adds an extended timestamp that the raw entries do without).
	w, err := bw.zw.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Deflate, ModifiedDate: bw.dosDate, ModifiedTime: bw.dosTime, CRC32: c.crc,
		CompressedSize64: uint64(len(c.data)), UncompressedSize64: uint64(c.size)})
	if err == nil {
		_, err = w.Write(c.data)
	}
	if err != nil {
		return fmt.Errorf("evidence: write %s: %w", name, err)
	}
	return nil
}

func (bw *bundleWriter) stream(name string, fn func(io.Writer) error) error {
	w, _, err := bw.entry(name)
	if err != nil {
		return err
	}
	buf := bufio.NewWriterSize(w, 64<<10)
	if err := fn(buf); err != nil {
		return fmt.Errorf("evidence: write %s: %w", name, err)
	}
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("evidence: write %s: %w", name, err)
	}
	return nil
}

func (bw *bundleWriter) message(ctx context.Context, m *Message, c Content) error {
	want, _ := parseSum(m.SHA256)
	rc, err := c.OpenMessage(ctx, want)
	if err != nil {
		return fmt.Errorf("evidence: message %s: %w", m.SHA256, err)
	}
	defer rc.Close()
	w, done, err := bw.entry(m.File)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, rc); err != nil {
		return fmt.Errorf("evidence: message %s: %w", m.SHA256, err)
	}
	if got, n := done(); got != want || n != m.Size {
		return fmt.Errorf("%w: message %s: the content has %d bytes and SHA-256 %x, the record %d bytes", ErrInvalid, m.SHA256, n, got, m.Size)
	}
	return nil
}

type hashCounter struct {
	h hash.Hash
	n int64
}

func (h *hashCounter) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.n += int64(len(p))
	return len(p), nil
}

// UseCompressor makes zw deflate as bundles are deflated: at the fastest level, with writers
// reused across entries and archives (a benchmark's floor zips with it too).
func UseCompressor(zw *zip.Writer) { zw.RegisterCompressor(zip.Deflate, newFastFlate) }

// A deflate writer's state is about a megabyte: keep them for reuse across entries and bundles.
var flatePool sync.Pool

type pooledFlate struct{ *flate.Writer }

func (p pooledFlate) Close() error {
	err := p.Writer.Close()
	flatePool.Put(p.Writer)
	return err
}

func newFastFlate(w io.Writer) (io.WriteCloser, error) {
	if fw, ok := flatePool.Get().(*flate.Writer); ok {
		fw.Reset(w)
		return pooledFlate{fw}, nil
	}
	fw, err := flate.NewWriter(w, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	return pooledFlate{fw}, nil
}
