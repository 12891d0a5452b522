package evidence

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// Signatures and fixed lengths of the ZIP records (APPNOTE 6.3.10, sections 4.3.7 to 4.3.16).
const (
	sigLocal      = 0x04034b50
	sigDescriptor = 0x08074b50
	sigCentral    = 0x02014b50
	sigEnd64      = 0x06064b50
	sigLocator64  = 0x07064b50
	sigEnd        = 0x06054b50

	lenLocal     = 30
	lenCentral   = 46
	lenEnd64     = 56
	lenLocator64 = 20
	lenEnd       = 22
)

// asicComment is the archive comment [Write] sets; ETSI EN 319 162-1 allows it (the media type
// for tools that read only the end of an archive). An archive has that comment or none.
const asicComment = "mimetype=" + MediaType

// checkLayout checks that the archive r (size bytes) is laid out as [Write] lays one out, with
// nothing that one ZIP reader would see and another would not: from offset 0, each entry's local
// header (holding the very name, method and flags of its central-directory record), its data
// and, when flagged, a data descriptor that agrees with the central directory, one after the
// other in the order of the central directory; then the central directory holding exactly those
// records, the zip64 end records when present, and the end record with its comment closing the
// file. So no bytes hide between entries, before the first or after the end, no entry is seen
// under another name by a reader that walks local headers, and no entry is hidden from the
// central directory. Comments other than asicComment on the archive, and any comment on an
// entry, are refused ([ErrComment]); entries that share bytes with [ErrOverlap]; the rest with
// [ErrLayout].
func checkLayout(r io.ReaderAt, size int64, files []*zip.File, comment string) error {
	if comment != "" && comment != asicComment {
		return formatErr(ErrComment, "", "the archive's comment is %.80q; a bundle carries none or %q", comment, asicComment)
	}
	end, err := readEnd(r, size, int64(len(comment)))
	if err != nil {
		return err
	}
	if end.records != uint64(len(files)) {
		return formatErr(ErrLayout, "", "the end record counts %d entries, the central directory holds %d", end.records, len(files))
	}
	var dirSize uint64
	for _, f := range files {
		if f.Comment != "" {
			return formatErr(ErrComment, f.Name, "an entry carries a comment (%.80q)", f.Comment)
		}
		dirSize += lenCentral + uint64(len(f.Name)+len(f.Extra)+len(f.Comment))
	}
	pos := int64(0)
	for _, f := range sortByData(files) {
		off, err := f.DataOffset()
		if err != nil {
			return formatErr(ErrNotZip, f.Name, "local header: %v", err)
		}
		if off < pos {
			return formatErr(ErrOverlap, f.Name, "its data overlaps the entry before it")
		}

		if pos, err = checkLocal(r, pos, off, f); err != nil {
			return err
		}
	}
	if pos != end.dirOffset {
		return formatErr(ErrLayout, "", "%d bytes between the last entry and the central directory that no entry accounts for", end.dirOffset-pos)
	}
	if dirSize != end.dirSize || end.dirOffset+int64(end.dirSize) != end.dirEnd {
		return formatErr(ErrLayout, "", "the central directory holds %d bytes of records in %d bytes, ending at %d; the end record is at %d",
			dirSize, end.dirSize, end.dirOffset+int64(end.dirSize), end.dirEnd)
	}
	return nil
}

// checkLocal checks the local header of f, which must start at pos and put f's data at off, and
// the data descriptor after its data when f has one. It returns where the next header starts.
func checkLocal(r io.ReaderAt, pos, off int64, f *zip.File) (int64, error) {
	if off < pos+lenLocal+int64(len(f.Name)) {
		return 0, formatErr(ErrLayout, f.Name, "its data starts at %d, inside its local header at %d", off, pos)
	}
	// The header, and enough beyond it to name an entry the central directory lacks.
	hdr := make([]byte, lenLocal+max(len(f.Name), 80))
	got, err := r.ReadAt(hdr, pos)
	if got < lenLocal+len(f.Name) {
		return 0, formatErr(ErrLayout, f.Name, "no local header at %d, where the previous entry ends: %v", pos, err)
	}
	hdr = hdr[:got]
	le := binary.LittleEndian
	nameLen, extraLen := int64(le.Uint16(hdr[26:])), int64(le.Uint16(hdr[28:]))
	localName := hdr[lenLocal:min(int64(len(hdr)), lenLocal+nameLen)]
	switch {
	case le.Uint32(hdr) != sigLocal || pos+lenLocal+nameLen+extraLen != off:
		what := "bytes"
		if le.Uint32(hdr) == sigLocal {
			what = fmt.Sprintf("an entry missing from the central directory (its local header names %.80q)", localName)
		}
		return 0, formatErr(ErrLayout, f.Name, "%s at %d, before its data at %d, that the central directory does not account for", what, pos, off)
	case string(localName) != f.Name:
		return 0, formatErr(ErrLayout, f.Name, "its local header at %d names it otherwise (%.80q)", pos, localName)
	case le.Uint16(hdr[6:]) != f.Flags || le.Uint16(hdr[8:]) != f.Method:
		return 0, formatErr(ErrLayout, f.Name, "its local header's flags or method differ from the central directory's")
	}
	end := off + int64(f.CompressedSize64)
	if f.Flags&0x8 == 0 {
		// Sizes in the local header equal the central directory's, or defer to its zip64 extra
		// field, which must say them too: a reader that walks local headers finds the next
		// header by them.
		csize, usize := uint64(le.Uint32(hdr[18:])), uint64(le.Uint32(hdr[22:]))
		if csize == 0xffffffff || usize == 0xffffffff {
			extra := make([]byte, extraLen)
			if _, err := r.ReadAt(extra, off-extraLen); err != nil {
				return 0, formatErr(ErrLayout, f.Name, "its local extra field: %v", err)
			}
			usize, csize = zip64Sizes(extra)
		}
		if le.Uint32(hdr[14:]) != f.CRC32 || csize != f.CompressedSize64 || usize != f.UncompressedSize64 {
			return 0, formatErr(ErrLayout, f.Name, "its local header's CRC-32 or sizes differ from the central directory's")
		}
		return end, nil
	}
	// A data descriptor: an optional signature, the CRC-32, then both sizes in 4 bytes each, or
	// 8 in a zip64 entry.
	wide := f.CompressedSize64 >= 0xffffffff || f.UncompressedSize64 >= 0xffffffff
	n := 12
	if wide {
		n = 20
	}
	d := make([]byte, n+4)
	got, err = r.ReadAt(d, end)
	if got < n {
		return 0, formatErr(ErrLayout, f.Name, "its data descriptor is cut short: %v", err)
	}
	if le.Uint32(d) == sigDescriptor && got == n+4 {
		d = d[4:]
		end += 4
	} else {
		d = d[:n]
	}
	csize, usize := uint64(le.Uint32(d[4:])), uint64(le.Uint32(d[8:]))
	if wide {
		csize, usize = le.Uint64(d[4:]), le.Uint64(d[12:])
	}
	if le.Uint32(d) != f.CRC32 || csize != f.CompressedSize64 || usize != f.UncompressedSize64 {
		return 0, formatErr(ErrLayout, f.Name, "its data descriptor's CRC-32 or sizes differ from the central directory's")
	}
	return end + int64(n), nil
}

// zip64Sizes returns the uncompressed and compressed sizes of the zip64 extra field (header ID
// 1) of a local header's extra fields, which holds both; 0xffffffff for each when there is none.
func zip64Sizes(extra []byte) (usize, csize uint64) {
	le := binary.LittleEndian
	for len(extra) >= 4 {
		id, n := le.Uint16(extra), int(le.Uint16(extra[2:]))
		if n > len(extra)-4 {
			break
		}
		if id == 1 && n >= 16 {
			return le.Uint64(extra[4:]), le.Uint64(extra[12:])
		}
		extra = extra[4+n:]
	}
	return 0xffffffff, 0xffffffff
}

// dirEnd is what the end records say of the central directory.
type dirEnd struct {
	records   uint64
	dirOffset int64
	dirSize   uint64
	dirEnd    int64 // where the central directory must end: the zip64 end record, else the end record
}

// readEnd reads the end of central directory record, which must close the file with its
// commentLen-byte comment, and the zip64 end records before it when its fields defer to them.
func readEnd(r io.ReaderAt, size, commentLen int64) (*dirEnd, error) {
	at := size - commentLen - lenEnd
	b := make([]byte, lenEnd)
	if at < 0 {
		return nil, formatErr(ErrLayout, "", "no end record")
	}
	if _, err := r.ReadAt(b, at); err != nil {
		return nil, formatErr(ErrLayout, "", "end record: %v", err)
	}
	le := binary.LittleEndian
	if le.Uint32(b) != sigEnd || int64(le.Uint16(b[20:])) != commentLen {
		return nil, formatErr(ErrLayout, "", "bytes after the end record that no entry accounts for")
	}
	if le.Uint16(b[4:]) != 0 || le.Uint16(b[6:]) != 0 || le.Uint16(b[8:]) != le.Uint16(b[10:]) {
		return nil, formatErr(ErrLayout, "", "an archive split over several disks")
	}
	e := &dirEnd{records: uint64(le.Uint16(b[10:])), dirSize: uint64(le.Uint32(b[12:])), dirOffset: int64(le.Uint32(b[16:])), dirEnd: at}
	if e.records != 0xffff && e.dirSize != 0xffffffff && e.dirOffset != 0xffffffff {
		return e, nil
	}
	// The zip64 end record and its locator, right before the end record.
	loc := make([]byte, lenLocator64)
	if at < lenLocator64+lenEnd64 {
		return nil, formatErr(ErrLayout, "", "the end record defers to zip64 records that are not there")
	}
	if _, err := r.ReadAt(loc, at-lenLocator64); err != nil || le.Uint32(loc) != sigLocator64 || le.Uint32(loc[4:]) != 0 || le.Uint32(loc[16:]) != 1 {
		return nil, formatErr(ErrLayout, "", "the end record defers to zip64 records that are not there")
	}
	p := le.Uint64(loc[8:])
	if p != uint64(at-lenLocator64-lenEnd64) {
		return nil, formatErr(ErrLayout, "", "the zip64 end record is not right before its locator")
	}
	z := make([]byte, lenEnd64)
	if _, err := r.ReadAt(z, int64(p)); err != nil || le.Uint32(z) != sigEnd64 || le.Uint64(z[4:]) != lenEnd64-12 ||
		le.Uint32(z[16:]) != 0 || le.Uint32(z[20:]) != 0 || le.Uint64(z[24:]) != le.Uint64(z[32:]) {
		return nil, formatErr(ErrLayout, "", "a zip64 end record that is malformed, extended or split over disks")
	}
	e64 := &dirEnd{records: le.Uint64(z[32:]), dirSize: le.Uint64(z[40:]), dirEnd: int64(p)}
	off := le.Uint64(z[48:])
	if off > uint64(p) || e64.dirSize > uint64(p) {
		return nil, formatErr(ErrLayout, "", "the zip64 end record points past itself")
	}
	e64.dirOffset = int64(off)
	// The 32-bit fields that do not defer must agree.
	if e.records != 0xffff && e.records != e64.records || e.dirSize != 0xffffffff && e.dirSize != e64.dirSize ||
		e.dirOffset != 0xffffffff && e.dirOffset != e64.dirOffset {
		return nil, formatErr(ErrLayout, "", "the end record and the zip64 end record disagree")
	}
	return e64, nil
}

// sortByData returns files sorted by where their data starts (the order [Write] writes them in).
func sortByData(files []*zip.File) []*zip.File {
	out := slices.Clone(files)
	slices.SortStableFunc(out, func(a, b *zip.File) int {
		x, _ := a.DataOffset()
		y, _ := b.DataOffset()
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return out
}

// countEntries counts the records of the central directory the way archive/zip finds and reads
// them (the last end record in the archive's last 65 KB, the directory it points to, records up
// to the first that is not one), and refuses more than max with [ErrTooMany], before archive/zip
// holds them all in memory: the end record's count cannot bound them (archive/zip compares only
// its low 16 bits). It refuses a record whose name is longer than [checkName] allows, whose extra
// fields exceed 1 KiB (a bundle's entries carry at most a zip64 field; other writers' timestamps
// and attributes fit) or that carries a comment, so that what archive/zip reads into memory is
// bounded by the entry count. What it cannot find it leaves to archive/zip to refuse.
func countEntries(r io.ReaderAt, size int64, max int) error {
	const maxNameLen, maxExtraLen = 1024, 1024
	le := binary.LittleEndian
	tail := min(size, 65*1024)
	buf := make([]byte, tail)
	if _, err := r.ReadAt(buf, size-tail); err != nil && err != io.EOF {
		return nil
	}
	p := -1
	for i := len(buf) - lenEnd; i >= 0 && p < 0; i-- {
		if le.Uint32(buf[i:]) == sigEnd {
			p = i
		}
	}
	if p < 0 || p+lenEnd+int(le.Uint16(buf[p+20:])) > len(buf) {
		return nil
	}
	endAt := size - tail + int64(p)
	dirSize, dirOff := int64(le.Uint32(buf[p+12:])), int64(le.Uint32(buf[p+16:]))
	if le.Uint16(buf[p+10:]) == 0xffff || dirSize == 0xffff || dirOff == 0xffffffff { // as archive/zip tests them
		loc := make([]byte, lenLocator64)
		if endAt < lenLocator64 {
			return nil
		}
		if _, err := r.ReadAt(loc, endAt-lenLocator64); err == nil && le.Uint32(loc) == sigLocator64 {
			z := make([]byte, lenEnd64)
			at := int64(le.Uint64(loc[8:]))
			if at < 0 || at > size-lenEnd64 {
				return nil
			}
			if _, err := r.ReadAt(z, at); err != nil || le.Uint32(z) != sigEnd64 {
				return nil
			}
			endAt, dirSize, dirOff = at, int64(le.Uint64(z[40:])), int64(le.Uint64(z[48:]))
		}
	}
	if dirSize < 0 || dirOff < 0 || dirOff > size {
		return nil
	}
	// archive/zip's correction for an archive with bytes before it.
	hdr := make([]byte, 4)
	if base := endAt - dirSize - dirOff; base > 0 && base+dirOff < size {
		if _, err := r.ReadAt(hdr, dirOff); err != nil || le.Uint32(hdr) != sigCentral {
			dirOff += base
		}
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, dirOff, size-dirOff), 64<<10)
	rec := make([]byte, lenCentral)
	for n := 0; ; n++ {
		if _, err := io.ReadFull(br, rec); err != nil || le.Uint32(rec) != sigCentral {
			return nil
		}
		if n == max {
			return formatErr(ErrTooMany, "", "more than %d entries in the central directory", max)
		}
		nameLen, extraLen, commentLen := int(le.Uint16(rec[28:])), int(le.Uint16(rec[30:])), int(le.Uint16(rec[32:]))
		// archive/zip holds every record's name, extra field and comment; bound them here, so
		// that its memory is bounded by the entry count and not by the file's size.
		switch {
		case nameLen > maxNameLen:
			return formatErr(ErrUnsafeName, "", "central directory record %d: a name of %d bytes, limit %d", n, nameLen, maxNameLen)
		case extraLen > maxExtraLen:
			return formatErr(ErrUnsupported, "", "central directory record %d: extra fields of %d bytes, limit %d", n, extraLen, maxExtraLen)
		case commentLen > 0:
			return formatErr(ErrComment, "", "central directory record %d carries a comment of %d bytes", n, commentLen)
		}
		if _, err := br.Discard(nameLen + extraLen); err != nil {
			return nil
		}
	}
}
