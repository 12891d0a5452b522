package evidence_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
)

// zipFile is one entry of a hand-made archive.
type zipFile struct {
	hdr  zip.FileHeader
	data []byte
	raw  bool // data is already compressed and hdr carries the sizes and CRC
}

func mimetypeFile() zipFile {
	return zipFile{hdr: zip.FileHeader{Name: evidence.NameMimetype, Method: zip.Store}, data: []byte(evidence.MediaType)}
}

func file(name, data string) zipFile {
	return zipFile{hdr: zip.FileHeader{Name: name, Method: zip.Deflate}, data: []byte(data)}
}

// makeZip writes files as they are (stored entries with sizes known up front, so no data
// descriptor; raw entries as given).
func makeZip(t testing.TB, files ...zipFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		h := f.hdr
		var w io.Writer
		var err error
		switch {
		case f.raw:
			w, err = zw.CreateRaw(&h)
		case h.Method == zip.Store:
			h.CRC32 = crc32.ChecksumIEEE(f.data)
			h.CompressedSize64 = uint64(len(f.data))
			h.UncompressedSize64 = uint64(len(f.data))
			w, err = zw.CreateRaw(&h)
		default:
			w, err = zw.CreateHeader(&h)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflate(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func openBytes(data []byte, lim evidence.Limits) (*evidence.Reader, error) {
	return evidence.Open(bytes.NewReader(data), int64(len(data)), &evidence.ReadOptions{Limits: lim})
}

func TestOpenRefuses(t *testing.T) {
	zeros := make([]byte, 4<<20)
	symlink := file("messages/link.eml", "/etc/passwd")
	symlink.hdr.SetMode(fs.ModeSymlink | 0o777)
	device := file("messages/dev.eml", "")
	device.hdr.SetMode(fs.ModeDevice | 0o644)
	encrypted := file("secret.txt", "x")
	encrypted.hdr.Flags |= 0x1
	bzip := zipFile{hdr: zip.FileHeader{Name: "bzip.txt", Method: 12, CompressedSize64: 1, UncompressedSize64: 1}, data: []byte("x"), raw: true}
	compressedMime := mimetypeFile()
	compressedMime.hdr.Method = zip.Deflate
	extraMime := mimetypeFile()
	extraMime.hdr.Extra = []byte{0xfe, 0xca, 0, 0}
	nonUTF8 := file("messages/\xff\xfe.eml", "x")
	nonUTF8.hdr.NonUTF8 = true
	lying := zipFile{hdr: zip.FileHeader{Name: "bomb.bin", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(zeros),
		CompressedSize64: 100, UncompressedSize64: 1 << 40}, data: deflate(t, zeros)[:100], raw: true}
	storedLie := zipFile{hdr: zip.FileHeader{Name: "stored.bin", Method: zip.Store, CompressedSize64: 10,
		UncompressedSize64: 20}, data: []byte("0123456789"), raw: true}
	cases := []struct {
		name  string
		files []zipFile
		lim   evidence.Limits
		want  error
	}{
		{"zip slip", []zipFile{mimetypeFile(), file("../../etc/cron.d/evil", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"zip slip inside", []zipFile{mimetypeFile(), file("messages/../../evil", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"absolute", []zipFile{mimetypeFile(), file("/etc/passwd", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"backslash", []zipFile{mimetypeFile(), file("..\\..\\evil", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"drive", []zipFile{mimetypeFile(), file("C:/evil", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"dot segment", []zipFile{mimetypeFile(), file("./manifest.json", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"empty segment", []zipFile{mimetypeFile(), file("messages//a.eml", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"control character", []zipFile{mimetypeFile(), file("report\x00.html", "x")}, evidence.Limits{}, evidence.ErrUnsafeName},
		{"non-UTF-8 name", []zipFile{mimetypeFile(), nonUTF8}, evidence.Limits{}, evidence.ErrBadName},
		{"duplicate", []zipFile{mimetypeFile(), file("manifest.json", "{}"), file("manifest.json", "{}")}, evidence.Limits{}, evidence.ErrDuplicateName},
		{"duplicate after case folding", []zipFile{mimetypeFile(), file("manifest.json", "{}"), file("MANIFEST.json", "{}")}, evidence.Limits{}, evidence.ErrDuplicateName},
		{"duplicate after folding a ligature", []zipFile{mimetypeFile(), file("ﬁle.txt", "x"), file("FILE.txt", "x")}, evidence.Limits{}, evidence.ErrDuplicateName},
		{"duplicate after normalisation", []zipFile{mimetypeFile(), file("caf\u00e9.txt", "x"), file("cafe\u0301.txt", "x")}, evidence.Limits{}, evidence.ErrDuplicateName},
		{"symlink", []zipFile{mimetypeFile(), symlink}, evidence.Limits{}, evidence.ErrNotRegular},
		{"device", []zipFile{mimetypeFile(), device}, evidence.Limits{}, evidence.ErrNotRegular},
		{"directory", []zipFile{mimetypeFile(), file("messages/", "")}, evidence.Limits{}, evidence.ErrNotRegular},
		{"encrypted", []zipFile{mimetypeFile(), encrypted}, evidence.Limits{}, evidence.ErrUnsupported},
		{"unknown method", []zipFile{mimetypeFile(), bzip}, evidence.Limits{}, evidence.ErrUnsupported},
		{"too many entries", []zipFile{mimetypeFile(), file("a", "1"), file("b", "2"), file("c", "3")}, evidence.Limits{MaxEntries: 3}, evidence.ErrTooMany},
		{"entry too large", []zipFile{mimetypeFile(), {hdr: zip.FileHeader{Name: "zeros", Method: zip.Deflate}, data: zeros}}, evidence.Limits{MaxEntrySize: 1 << 20}, evidence.ErrTooLarge},
		{"all too large", []zipFile{mimetypeFile(), {hdr: zip.FileHeader{Name: "z1", Method: zip.Deflate}, data: zeros}, {hdr: zip.FileHeader{Name: "z2", Method: zip.Deflate}, data: zeros}}, evidence.Limits{MaxTotalSize: 6 << 20}, evidence.ErrTooLarge},
		{"declared ratio beyond deflate", []zipFile{mimetypeFile(), lying}, evidence.Limits{MaxEntrySize: 1 << 50, MaxTotalSize: 1 << 50}, evidence.ErrRatio},
		{"stored sizes differ", []zipFile{mimetypeFile(), storedLie}, evidence.Limits{}, evidence.ErrRatio},
		{"mimetype missing", []zipFile{file("manifest.json", "{}")}, evidence.Limits{}, evidence.ErrNotASiC},
		{"mimetype not first", []zipFile{file("manifest.json", "{}"), mimetypeFile()}, evidence.Limits{}, evidence.ErrNotASiC},
		{"mimetype compressed", []zipFile{compressedMime}, evidence.Limits{}, evidence.ErrNotASiC},
		{"mimetype with extra field", []zipFile{extraMime}, evidence.Limits{}, evidence.ErrNotASiC},
		{"mimetype of another type", []zipFile{{hdr: zip.FileHeader{Name: evidence.NameMimetype, Method: zip.Store}, data: []byte("application/vnd.etsi.asic-s+zip")}}, evidence.Limits{}, evidence.ErrNotASiC},
		{"empty", nil, evidence.Limits{}, evidence.ErrNotASiC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := makeZip(t, c.files...)
			_, err := openBytes(data, c.lim)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %v, want %v", err, c.want)
			}
			var fe *evidence.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not a *FormatError", err)
			}
			res := evidence.VerifyReaderAt(t.Context(), bytes.NewReader(data), int64(len(data)), &evidence.VerifyOptions{Limits: c.lim})
			if res.OK || !hasFailure(res, evidence.FailBundle, "bundle", c.want.Error()) {
				t.Fatalf("Verify = %+v", res.Failures)
			}
		})
	}
}

func TestOpenRefusesNotZip(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("not a zip"), []byte("PK\x05\x06" + strings.Repeat("\x00", 18))} {
		if _, err := openBytes(data, evidence.Limits{}); !errors.Is(err, evidence.ErrNotZip) && !errors.Is(err, evidence.ErrNotASiC) {
			t.Errorf("Open(%q) = %v", data, err)
		}
	}
}

// An entry whose declared size is smaller than its content is caught while it is read, and one
// whose data is cut short too.
func TestReadCatchesLyingSizes(t *testing.T) {
	content := bytes.Repeat([]byte("evidence "), 1000)
	comp := deflate(t, content)
	short := zipFile{hdr: zip.FileHeader{Name: "short", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(content[:100]),
		CompressedSize64: uint64(len(comp)), UncompressedSize64: 100}, data: comp, raw: true}
	long := zipFile{hdr: zip.FileHeader{Name: "long", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(content),
		CompressedSize64: uint64(len(comp)), UncompressedSize64: uint64(len(content)) + 50}, data: comp, raw: true}
	badCRC := zipFile{hdr: zip.FileHeader{Name: "crc", Method: zip.Deflate, CRC32: 12345,
		CompressedSize64: uint64(len(comp)), UncompressedSize64: uint64(len(content))}, data: comp, raw: true}
	r, err := openBytes(makeZip(t, mimetypeFile(), short, long, badCRC), evidence.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"short", "long", "crc"} {
		if _, err := r.ReadFile(name, 1<<20); !errors.Is(err, evidence.ErrCorrupt) {
			t.Errorf("ReadFile(%s) = %v, want ErrCorrupt", name, err)
		}
	}
}

// Two central-directory entries pointing at the same data (the overlapping-file zip bomb).
func TestOpenRefusesOverlap(t *testing.T) {
	data := makeZip(t, mimetypeFile(), file("a.txt", strings.Repeat("a", 1000)), file("b.txt", strings.Repeat("a", 1000)))
	var offsets []int
	for i := 0; i+4 <= len(data); i++ {
		if string(data[i:i+4]) == "PK\x01\x02" {
			offsets = append(offsets, i)
		}
	}
	if len(offsets) != 3 {
		t.Fatalf("found %d central headers", len(offsets))
	}
	first := binary.LittleEndian.Uint32(data[offsets[1]+42:])
	binary.LittleEndian.PutUint32(data[offsets[2]+42:], first)
	if _, err := openBytes(data, evidence.Limits{}); !errors.Is(err, evidence.ErrOverlap) {
		t.Fatalf("Open = %v, want ErrOverlap", err)
	}
}

func TestReadTotalLimit(t *testing.T) {
	content := bytes.Repeat([]byte("x"), 3000)
	r, err := openBytes(makeZip(t, mimetypeFile(), file("a", string(content)), file("b", string(content))), evidence.Limits{MaxTotalSize: 7000})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.ReadFile("a", 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.ReadFile("b", 1<<20); !errors.Is(err, evidence.ErrTooLarge) {
		t.Fatalf("third read = %v, want ErrTooLarge", err)
	}
}

// ReadFile holds an entry once: a large message is read into one buffer of its size, not grown
// by doubling (which allocates about twice the message, and held 1.5 times it at once). An entry
// deflated far beyond what mail deflates to is still read whole, growing as its bytes arrive.
func TestReadFileAllocatesOnce(t *testing.T) {
	text := bytes.Repeat([]byte("Subject: evidence\r\n"), 8<<20/19)
	rnd := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{}).Read(rnd)
	r, err := openBytes(makeZip(t, mimetypeFile(), file("text.eml", string(text)), file("rnd.eml", string(rnd)),
		zipFile{hdr: zip.FileHeader{Name: "stored.eml", Method: zip.Store}, data: rnd}), evidence.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want []byte
		max  float64 // bytes allocated over the entry's size
	}{{"text.eml", text, 2.5}, {"rnd.eml", rnd, 1.1}, {"stored.eml", rnd, 1.1}} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		got, err := r.ReadFile(c.name, 1<<30)
		runtime.ReadMemStats(&after)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("%s: %d bytes, %v", c.name, len(got), err)
		}
		if a := float64(after.TotalAlloc - before.TotalAlloc); a > c.max*float64(len(c.want)) {
			t.Errorf("%s: %.1f MB allocated to read %.1f MB", c.name, a/1e6, float64(len(c.want))/1e6)
		}
	}
}
