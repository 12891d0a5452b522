package evidence

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"errors"
	"hash"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Limits bound what [Open] accepts and what reading a bundle's entries may cost. A zero field
// means the default.
type Limits struct {
	// MaxEntries bounds the number of entries; default 1,000,000.
	MaxEntries int
	// MaxEntrySize bounds one entry's uncompressed size; default 256 MiB (the archive refuses
	// messages over 64 MiB by default). A message is read whole to be parsed.
	MaxEntrySize int64
	// MaxTotalSize bounds the sum of the entries' uncompressed sizes, declared and actually read;
	// default 64 GiB.
	MaxTotalSize int64
	// MaxManifestSize bounds manifest.json and the ASiC manifest, which are read into memory;
	// default 512 MiB.
	MaxManifestSize int64
}

// Default limits.
const (
	DefaultMaxEntries      = 1_000_000
	DefaultMaxEntrySize    = 256 << 20
	DefaultMaxTotalSize    = 64 << 30
	DefaultMaxManifestSize = 512 << 20
)

// deflateMaxRatio is the largest expansion deflate can encode: a 258-byte match costs at least
// one bit after the first, so a deflate stream never decodes to more than about 1032 times its
// size. Declared sizes beyond that are a lie; the slack covers block headers of tiny streams.
const (
	deflateMaxRatio = 1032
	deflateSlack    = 1 << 10
)

func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxEntrySize <= 0 {
		l.MaxEntrySize = DefaultMaxEntrySize
	}
	if l.MaxTotalSize <= 0 {
		l.MaxTotalSize = DefaultMaxTotalSize
	}
	if l.MaxManifestSize <= 0 {
		l.MaxManifestSize = DefaultMaxManifestSize
	}
	return l
}

// ReadOptions configure [Open]. A nil *ReadOptions means the default limits.
type ReadOptions struct {
	Limits Limits
}

// Reader reads the entries of a bundle that [Open] accepted. It never extracts anything: entries
// are streamed from the underlying io.ReaderAt. It is safe for concurrent use.
type Reader struct {
	ra      io.ReaderAt
	limits  Limits
	entries []*Entry
	byName  map[string]*Entry
	read    atomic.Int64 // uncompressed bytes handed out so far
}

// Entry is one regular file of a bundle.
type Entry struct {
	Name string
	// Size is the declared uncompressed size (reading checks it).
	Size int64
	f    *zip.File
	off  int64 // where its data starts
}

// Open checks the structure of the ZIP archive in r (size bytes) and returns a Reader for it, or
// a *[FormatError] saying why the archive is refused. Entry contents are not read, except the
// mimetype entry.
func Open(r io.ReaderAt, size int64, opts *ReadOptions) (*Reader, error) {
	var lim Limits
	if opts != nil {
		lim = opts.Limits
	}
	lim = lim.withDefaults()
	if err := countEntries(r, size, lim.MaxEntries); err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, formatErr(ErrNotZip, "", "%v", err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, formatErr(ErrTooMany, "", "%d entries, limit %d", len(zr.File), lim.MaxEntries)
	}
	rd := &Reader{ra: r, limits: lim, byName: make(map[string]*Entry, len(zr.File))}
	folded := make(map[string]string, len(zr.File))
	fold := cases.Fold()
	var total uint64
	for i, f := range zr.File {
		name := f.Name
		if err := checkName(name); err != nil {
			return nil, err
		}
		key := norm.NFC.String(fold.String(name))
		if prev, dup := folded[key]; dup {
			if prev == name {
				return nil, formatErr(ErrDuplicateName, name, "the name occurs twice")
			}
			return nil, formatErr(ErrDuplicateName, name, "the same name as %q after case folding and normalisation", prev)
		}
		folded[key] = name
		if strings.HasSuffix(name, "/") || !f.Mode().IsRegular() {
			return nil, formatErr(ErrNotRegular, name, "mode %v", f.Mode())
		}
		if f.Flags&0x1 != 0 {
			return nil, formatErr(ErrUnsupported, name, "encrypted")
		}
		switch f.Method {
		case zip.Store:
			if f.CompressedSize64 != f.UncompressedSize64 {
				return nil, formatErr(ErrRatio, name, "stored entry declares %d bytes compressed and %d uncompressed", f.CompressedSize64, f.UncompressedSize64)
			}
		case zip.Deflate:
			if f.UncompressedSize64 > deflateMaxRatio*f.CompressedSize64+deflateSlack {
				return nil, formatErr(ErrRatio, name, "declares %d bytes from %d compressed, beyond what deflate can encode", f.UncompressedSize64, f.CompressedSize64)
			}
		default:
			return nil, formatErr(ErrUnsupported, name, "compression method %d", f.Method)
		}
		if f.UncompressedSize64 > uint64(lim.MaxEntrySize) {
			return nil, formatErr(ErrTooLarge, name, "declares %d bytes, limit %d", f.UncompressedSize64, lim.MaxEntrySize)
		}
		if total += f.UncompressedSize64; total > uint64(lim.MaxTotalSize) {
			return nil, formatErr(ErrTooLarge, name, "the entries declare more than %d bytes in all", lim.MaxTotalSize)
		}
		off, err := f.DataOffset()
		if err != nil {
			return nil, formatErr(ErrNotZip, name, "local header: %v", err)
		}
		end := off + int64(f.CompressedSize64)
		if off < 0 || end < off || end > size {
			return nil, formatErr(ErrNotZip, name, "data beyond the end of the archive")
		}
		if i == 0 {
			if err := checkMimetype(f, off); err != nil {
				return nil, err
			}
		}
		e := &Entry{Name: name, Size: int64(f.UncompressedSize64), f: f, off: off}
		rd.entries = append(rd.entries, e)
		rd.byName[name] = e
	}
	if len(zr.File) == 0 {
		return nil, formatErr(ErrNotASiC, NameMimetype, "the archive is empty")
	}
	if err := checkLayout(r, size, zr.File, zr.Comment); err != nil {
		return nil, err
	}
	return rd, nil
}

// checkMimetype checks the first entry is the ASiC mimetype entry: named mimetype, stored, no
// extra field (its data right after a local header at offset 0), holding [MediaType].
func checkMimetype(f *zip.File, off int64) error {
	if f.Name != NameMimetype {
		return formatErr(ErrNotASiC, f.Name, "the first entry must be %q", NameMimetype)
	}
	if f.Method != zip.Store || len(f.Extra) != 0 || off != 30+int64(len(NameMimetype)) {
		return formatErr(ErrNotASiC, f.Name, "must be stored uncompressed, first in the archive, with no extra field")
	}
	if f.UncompressedSize64 != uint64(len(MediaType)) {
		return formatErr(ErrNotASiC, f.Name, "must hold %q", MediaType)
	}
	rc, err := f.Open()
	if err != nil {
		return formatErr(ErrNotASiC, f.Name, "%v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, int64(len(MediaType))+1))
	if err != nil || string(b) != MediaType {
		return formatErr(ErrNotASiC, f.Name, "must hold %q", MediaType)
	}
	return nil
}

// checkName refuses names that are not valid UTF-8 or not plain relative paths.
func checkName(name string) error {
	if !utf8.ValidString(name) {
		return formatErr(ErrBadName, strings.ToValidUTF8(name, "\uFFFD"), "")
	}
	if name == "" || len(name) > 1024 {
		return formatErr(ErrUnsafeName, name, "empty or longer than 1024 bytes")
	}
	if name[0] == '/' || strings.ContainsAny(name, "\\:") {
		return formatErr(ErrUnsafeName, name, "absolute, or with a backslash or a colon")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == utf8.RuneError {
			return formatErr(ErrUnsafeName, name, "control character")
		}
	}
	segs := strings.Split(strings.TrimSuffix(name, "/"), "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return formatErr(ErrUnsafeName, name, "empty, . or .. path segment")
		}
	}
	return nil
}

// Entries returns the entries in archive order.
func (r *Reader) Entries() []*Entry { return slices.Clone(r.entries) }

// Lookup returns the entry called name.
func (r *Reader) Lookup(name string) (*Entry, bool) {
	e, ok := r.byName[name]
	return e, ok
}

// Open returns the uncompressed bytes of the entry called name. The reader fails with a
// *[FormatError] when the bytes do not match the declared size or CRC-32 ([ErrCorrupt]) or pass
// the limits ([ErrTooLarge]).
func (r *Reader) Open(name string) (io.ReadCloser, error) {
	e, ok := r.byName[name]
	if !ok {
		return nil, formatErr(ErrMissing, name, "")
	}
	var rc io.ReadCloser
	if e.f.Method == zip.Deflate {
		rc = r.inflate(e)
	} else {
		var err error
		if rc, err = e.f.Open(); err != nil {
			return nil, formatErr(ErrCorrupt, name, "%v", err)
		}
	}
	return &entryReader{r: r, e: e, rc: rc}, nil
}

// inflate returns the uncompressed bytes of the deflated entry e, checking at the end of its
// deflate stream that the stream used every compressed byte of the entry (else [ErrLayout]:
// archive/zip ignores bytes after the stream, where a reader that follows the stream instead of
// the sizes would find what is hidden there), that the size is the declared one and the CRC-32
// the central directory's.
func (r *Reader) inflate(e *Entry) io.ReadCloser {
	sr := io.NewSectionReader(r.ra, e.off, int64(e.f.CompressedSize64))
	br, _ := bufPool.Get().(*bufio.Reader)
	if br == nil {
		br = bufio.NewReaderSize(sr, 32<<10)
	} else {
		br.Reset(sr)
	}
	fr, _ := inflatePool.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReader(br)
	} else {
		fr.(flate.Resetter).Reset(br, nil)
	}
	return &inflater{e: e, sr: sr, br: br, fr: fr, crc: crc32.NewIEEE()}
}

var bufPool, inflatePool sync.Pool

type inflater struct {
	e   *Entry
	sr  *io.SectionReader
	br  *bufio.Reader
	fr  io.ReadCloser
	crc hash.Hash32
	n   uint64
}

func (d *inflater) Read(p []byte) (int, error) {
	if d.fr == nil {
		return 0, errors.New("evidence: read after close")
	}
	n, err := d.fr.Read(p)
	d.crc.Write(p[:n])
	d.n += uint64(n)
	if errors.Is(err, io.EOF) {
		pos, _ := d.sr.Seek(0, io.SeekCurrent)
		used := pos - int64(d.br.Buffered())
		switch f := d.e.f; {
		case used != int64(f.CompressedSize64):
			return n, formatErr(ErrLayout, d.e.Name, "its deflate stream ends after %d of its %d compressed bytes: the rest is hidden from this reader, not from others", used, f.CompressedSize64)
		case d.n != f.UncompressedSize64:
			return n, io.ErrUnexpectedEOF
		case d.crc.Sum32() != f.CRC32:
			return n, zip.ErrChecksum
		}
	}
	return n, err
}

func (d *inflater) Close() error {
	if d.fr == nil {
		return nil
	}
	err := d.fr.Close()
	d.br.Reset(nil)
	bufPool.Put(d.br)
	inflatePool.Put(d.fr)
	d.fr, d.br = nil, nil
	return err
}

// ReadFile returns the bytes of the entry called name, at most limit bytes (else [ErrTooLarge]).
func (r *Reader) ReadFile(name string, limit int64) ([]byte, error) {
	e, ok := r.byName[name]
	if !ok {
		return nil, formatErr(ErrMissing, name, "")
	}
	if e.Size > limit {
		return nil, formatErr(ErrTooLarge, name, "%d bytes, limit %d", e.Size, limit)
	}
	rc, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// One buffer of the declared size and a byte (to read the end), so a large message is held
	// once and never copied while it grows. The declared size is a claim, though: past what the
	// entry's compressed bytes plausibly hold, it grows only as bytes arrive.
	hint := e.Size
	if e.f.Method == zip.Deflate {
		hint = min(hint, max(1<<20, plausibleRatio*int64(e.f.CompressedSize64)))
	}
	buf := make([]byte, 0, hint+1)
	for {
		if len(buf) == cap(buf) { // past the hint: double, up to the declared size
			buf = append(make([]byte, 0, min(2*int64(cap(buf)), e.Size+1)), buf...)
		}
		n, err := rc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// plausibleRatio is how much larger than its compressed bytes [Reader.ReadFile] expects an
// entry to be before it believes more only as the bytes arrive: mail deflates by less (base64
// attachments by about a quarter, text by a few times).
const plausibleRatio = 16

// entryReader counts the bytes of one entry against its declared size and the reader's limits,
// and turns archive/zip's errors into FormatErrors.
type entryReader struct {
	r  *Reader
	e  *Entry
	rc io.ReadCloser
	n  int64
}

func (er *entryReader) Read(p []byte) (int, error) {
	if rest := er.e.Size - er.n + 1; int64(len(p)) > rest {
		p = p[:rest] // one byte more than declared is enough to notice a lie
	}
	n, err := er.rc.Read(p)
	er.n += int64(n)
	if er.n > er.e.Size { // the byte past the declared size is not handed out
		return n - int(er.n-er.e.Size), formatErr(ErrCorrupt, er.e.Name, "more bytes than the %d declared", er.e.Size)
	}
	if t := er.r.read.Add(int64(n)); t > er.r.limits.MaxTotalSize {
		return n, formatErr(ErrTooLarge, er.e.Name, "more than %d bytes read from the bundle in all", er.r.limits.MaxTotalSize)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		var fe *FormatError
		if errors.As(err, &fe) {
			return n, err
		}
		// zip.ErrChecksum, zip.ErrFormat, io.ErrUnexpectedEOF (fewer bytes than declared), or a
		// corrupt deflate stream.
		return n, formatErr(ErrCorrupt, er.e.Name, "%v", err)
	}
	return n, err
}

func (er *entryReader) Close() error { return er.rc.Close() }
