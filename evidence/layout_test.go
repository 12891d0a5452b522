package evidence_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
)

var le = binary.LittleEndian

// records returns the offsets of every ZIP record of signature sig in data.
func records(data []byte, sig string) []int {
	var out []int
	for i := 0; i+4 <= len(data); i++ {
		if string(data[i:i+4]) == sig {
			out = append(out, i)
		}
	}
	return out
}

// endOf returns the offset of the end of central directory record.
func endOf(t *testing.T, data []byte) int {
	e := records(data, "PK\x05\x06")
	if len(e) != 1 {
		t.Fatalf("%d end records", len(e))
	}
	return e[0]
}

// toZip64 rewrites a small archive's end as a zip64 writer would: a zip64 end record and its
// locator before the end record, whose fields defer to them. alter may change the zip64 end
// record first.
func toZip64(t *testing.T, data []byte, alter func(z []byte)) []byte {
	end := endOf(t, data)
	e := data[end:]
	z := make([]byte, 56)
	le.PutUint32(z, 0x06064b50)
	le.PutUint64(z[4:], 44)
	le.PutUint16(z[12:], 45)
	le.PutUint16(z[14:], 45)
	le.PutUint64(z[24:], uint64(le.Uint16(e[8:])))
	le.PutUint64(z[32:], uint64(le.Uint16(e[10:])))
	le.PutUint64(z[40:], uint64(le.Uint32(e[12:])))
	le.PutUint64(z[48:], uint64(le.Uint32(e[16:])))
	if alter != nil {
		alter(z)
	}
	loc := make([]byte, 20)
	le.PutUint32(loc, 0x07064b50)
	le.PutUint64(loc[8:], uint64(end))
	le.PutUint32(loc[16:], 1)
	ne := bytes.Clone(e)
	le.PutUint16(ne[8:], 0xffff)
	le.PutUint16(ne[10:], 0xffff)
	le.PutUint32(ne[12:], 0xffffffff)
	le.PutUint32(ne[16:], 0xffffffff)
	out := append(bytes.Clone(data[:end]), z...)
	out = append(out, loc...)
	return append(out, ne...)
}

// hideEntry removes the central-directory record of the entry called name, leaving its local
// header and data in place: an entry a reader walking local headers sees and the central
// directory does not.
func hideEntry(t *testing.T, data []byte, name string) []byte {
	for _, c := range records(data, "PK\x01\x02") {
		n, x, k := int(le.Uint16(data[c+28:])), int(le.Uint16(data[c+30:])), int(le.Uint16(data[c+32:]))
		if string(data[c+46:c+46+n]) != name {
			continue
		}
		size := 46 + n + x + k
		out := append(bytes.Clone(data[:c]), data[c+size:]...)
		end := endOf(t, out)
		le.PutUint16(out[end+8:], le.Uint16(out[end+8:])-1)
		le.PutUint16(out[end+10:], le.Uint16(out[end+10:])-1)
		le.PutUint32(out[end+12:], le.Uint32(out[end+12:])-uint32(size))
		return out
	}
	t.Fatalf("no central record of %s", name)
	return nil
}

// Archives that one ZIP reader would read otherwise than another: bytes hidden outside the
// entries, an entry missing from the central directory, a local header naming an entry
// otherwise, a data descriptor or zip64 end record that lies, comments. Each is refused with
// ErrLayout or ErrComment, by Open and so by the verifier; a well-formed zip64 end is read.
func TestOpenRefusesAmbiguousLayout(t *testing.T) {
	base := func() []byte {
		return makeZip(t, mimetypeFile(), file("a.txt", "first"), file("hidden.eml", "planted"), file("b.txt", "second"))
	}
	if _, err := openBytes(base(), evidence.Limits{}); err != nil {
		t.Fatalf("the plain archive: %v", err)
	}
	if _, err := openBytes(toZip64(t, base(), nil), evidence.Limits{}); err != nil {
		t.Fatalf("the archive with a zip64 end: %v", err)
	}
	// A stored entry whose local header defers its sizes to a zip64 extra field saying sizes.
	zip64Local := func(usize, csize uint64) []byte {
		extra := make([]byte, 20)
		le.PutUint16(extra, 1)
		le.PutUint16(extra[2:], 16)
		le.PutUint64(extra[4:], usize)
		le.PutUint64(extra[12:], csize)
		d := makeZip(t, mimetypeFile(), zipFile{hdr: zip.FileHeader{Name: "a.txt", Method: zip.Store, Extra: extra}, data: []byte("first")})
		c := records(d, "PK\x03\x04")[1]
		le.PutUint32(d[c+18:], 0xffffffff)
		le.PutUint32(d[c+22:], 0xffffffff)
		return d
	}
	if _, err := openBytes(zip64Local(5, 5), evidence.Limits{}); err != nil {
		t.Fatalf("a local header with a zip64 extra field: %v", err)
	}
	withComment := func(archive, entry string) []byte {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.CreateRaw(&zip.FileHeader{Name: evidence.NameMimetype, Method: zip.Store, CRC32: crc32.ChecksumIEEE([]byte(evidence.MediaType)),
			CompressedSize64: uint64(len(evidence.MediaType)), UncompressedSize64: uint64(len(evidence.MediaType))})
		w.Write([]byte(evidence.MediaType))
		w, _ = zw.CreateHeader(&zip.FileHeader{Name: "a.txt", Method: zip.Deflate, Comment: entry})
		w.Write([]byte("first"))
		zw.SetComment(archive)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	if _, err := openBytes(withComment("mimetype="+evidence.MediaType, ""), evidence.Limits{}); err != nil {
		t.Fatalf("the ASiC comment: %v", err)
	}
	cases := []struct {
		name   string
		data   func() []byte
		want   error
		detail string
	}{
		{"bytes after the end", func() []byte { return append(base(), "trailing"...) }, evidence.ErrLayout, "after the end record"},
		{"bytes before the first entry", func() []byte { return append([]byte("MZ\x90\x00"), base()...) }, evidence.ErrNotASiC, "first in the archive"},
		{"bytes between entries", func() []byte {
			d := base()
			c := records(d, "PK\x03\x04")[2] // hidden.eml's local header, overwritten
			copy(d[c:c+4], "XXXX")
			return hideEntry(t, d, "hidden.eml")
		}, evidence.ErrLayout, "bytes at"},
		{"an entry missing from the central directory", func() []byte { return hideEntry(t, base(), "hidden.eml") },
			evidence.ErrLayout, `an entry missing from the central directory (its local header names "hidden.eml")`},
		{"a local header naming the entry otherwise", func() []byte {
			d := base()
			c := records(d, "PK\x03\x04")[1]
			copy(d[c+30:], "A.txt")
			return d
		}, evidence.ErrLayout, `names it otherwise ("A.txt")`},
		{"a local header with another method", func() []byte {
			d := base()
			c := records(d, "PK\x03\x04")[1]
			le.PutUint16(d[c+8:], zip.Store)
			return d
		}, evidence.ErrLayout, "flags or method"},
		{"a data descriptor that lies", func() []byte {
			d := base()
			c := records(d, "PK\x07\x08")[0]
			le.PutUint32(d[c+12:], 1<<20) // the uncompressed size
			return d
		}, evidence.ErrLayout, "data descriptor"},
		{"a local zip64 extra field that lies", func() []byte { return zip64Local(2, 2) }, evidence.ErrLayout, "sizes differ"},
		{"a zip64 end record that miscounts", func() []byte {
			return toZip64(t, base(), func(z []byte) { le.PutUint64(z[24:], 4+1<<16); le.PutUint64(z[32:], 4+1<<16) })
		}, evidence.ErrLayout, "counts 65540 entries"},
		{"a zip64 end record with extensible data", func() []byte {
			return toZip64(t, base(), func(z []byte) { le.PutUint64(z[4:], 60) })
		}, evidence.ErrLayout, "zip64 end record"},
		{"an archive comment", func() []byte { return withComment("see http://evil.example/", "") }, evidence.ErrComment, "the archive's comment"},
		{"an entry comment", func() []byte { return withComment("", "Consegnato.") }, evidence.ErrComment, "a comment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.data()
			_, err := openBytes(data, evidence.Limits{})
			var fe *evidence.FormatError
			if !errors.Is(err, c.want) || !errors.As(err, &fe) || !bytes.Contains([]byte(err.Error()), []byte(c.detail)) {
				t.Fatalf("Open = %v, want %v saying %q", err, c.want, c.detail)
			}
			res := evidence.VerifyReaderAt(t.Context(), bytes.NewReader(data), int64(len(data)), nil)
			if res.OK || !hasFailure(res, evidence.FailBundle, "bundle", c.want.Error()) {
				t.Fatalf("Verify = %+v", res.Failures)
			}
		})
	}
}

// An entry whose deflate stream ends before its compressed bytes do: archive/zip reads the
// stream and ignores the rest, where a reader that walks local headers (it follows the stream,
// not the sizes) finds what is hidden there, here a whole entry. Reading the entry refuses it.
func TestReadRefusesBytesAfterDeflateStream(t *testing.T) {
	content := []byte("Consegnato.\r\n")
	hidden := makeZip(t, mimetypeFile(), file("messages/planted.eml", "Subject: planted\r\n\r\n"))
	c := records(hidden, "PK\x03\x04")[1]
	comp := append(deflate(t, content), hidden[c:records(hidden, "PK\x01\x02")[0]]...)
	data := makeZip(t, mimetypeFile(), zipFile{hdr: zip.FileHeader{Name: "report.html", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(content),
		CompressedSize64: uint64(len(comp)), UncompressedSize64: uint64(len(content))}, data: comp, raw: true})
	r, err := openBytes(data, evidence.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadFile("report.html", 1<<20); !errors.Is(err, evidence.ErrLayout) {
		t.Fatalf("ReadFile = %q, %v; want ErrLayout", got, err)
	}
	// The same entry without the hidden bytes reads.
	plain := deflate(t, content)
	data = makeZip(t, mimetypeFile(), zipFile{hdr: zip.FileHeader{Name: "report.html", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(content),
		CompressedSize64: uint64(len(plain)), UncompressedSize64: uint64(len(content))}, data: plain, raw: true})
	if r, err = openBytes(data, evidence.Limits{}); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadFile("report.html", 1<<20); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
}

// An archive of many more entries than the limit is refused before they are read into memory,
// whatever its end record counts (archive/zip compares only the count's low 16 bits).
func TestOpenCountsEntriesFirst(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateRaw(&zip.FileHeader{Name: evidence.NameMimetype, Method: zip.Store, CRC32: crc32.ChecksumIEEE([]byte(evidence.MediaType)),
		CompressedSize64: uint64(len(evidence.MediaType)), UncompressedSize64: uint64(len(evidence.MediaType))})
	w.Write([]byte(evidence.MediaType))
	const n = 1<<16 + 1 // counted as 1 in 16 bits
	for i := range n - 1 {
		if _, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("m/%d", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	data := buf.Bytes()
	// A writer that wrote no zip64 end: the 16-bit count, wrapped.
	z := records(data, "PK\x06\x06")
	if len(z) == 1 {
		data = append(bytes.Clone(data[:z[0]]), data[endOf(t, data):]...)
		end := endOf(t, data)
		dir := records(data, "PK\x01\x02")[0]
		le.PutUint16(data[end+8:], n&0xffff)
		le.PutUint16(data[end+10:], n&0xffff)
		le.PutUint32(data[end+12:], uint32(z[0]-dir))
		le.PutUint32(data[end+16:], uint32(dir))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := openBytes(data, evidence.Limits{MaxEntries: 1000})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, evidence.ErrTooMany) {
		t.Fatalf("Open = %v, want ErrTooMany", err)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 1<<20 {
		t.Errorf("refusing %d entries allocated %d bytes: they were read first", n, a)
	}
}

// Records whose names, extra fields or comments are larger than a bundle's ever are refused
// while the central directory is counted, before archive/zip holds them: thousands of entries
// each carrying 64 KB would cost it the file's size in memory.
func TestOpenBoundsCentralRecords(t *testing.T) {
	big := bytes.Repeat([]byte{'a'}, 60<<10)
	extra := append([]byte{0xfe, 0xca, 0xff, 0xef}, big[:60<<10-4]...) // one unknown extra field
	le.PutUint16(extra[2:], uint16(len(extra)-4))
	for _, c := range []struct {
		name string
		hdr  zip.FileHeader
		want error
	}{
		{"long name", zip.FileHeader{Name: "messages/" + string(big)}, evidence.ErrUnsafeName},
		{"large extra", zip.FileHeader{Name: "messages/x.eml", Extra: extra}, evidence.ErrUnsupported},
		{"comment", zip.FileHeader{Name: "messages/x.eml", Comment: string(big)}, evidence.ErrComment},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			zw := zip.NewWriter(&buf)
			w, _ := zw.CreateRaw(&zip.FileHeader{Name: evidence.NameMimetype, Method: zip.Store, CRC32: crc32.ChecksumIEEE([]byte(evidence.MediaType)),
				CompressedSize64: uint64(len(evidence.MediaType)), UncompressedSize64: uint64(len(evidence.MediaType))})
			w.Write([]byte(evidence.MediaType))
			for range 20 {
				h := c.hdr
				h.Method = zip.Store
				if _, err := zw.CreateRaw(&h); err != nil {
					t.Fatal(err)
				}
			}
			zw.Close()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := openBytes(buf.Bytes(), evidence.Limits{})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %v, want %v", err, c.want)
			}
			if a := after.TotalAlloc - before.TotalAlloc; a > 1<<20 {
				t.Errorf("refusing 20 records of 60 KB allocated %d bytes: archive/zip read them first", a)
			}
		})
	}
}
