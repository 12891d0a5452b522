package evidence_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
)

// entry is one file of a bundle being rewritten by a test.
type entry struct {
	name string
	data []byte
}

// unzip returns the entries of a bundle in order.
func unzip(t testing.TB, data []byte) []entry {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{f.Name, b})
	}
	return out
}

// rezip writes entries as a bundle: mimetype stored first, the rest deflated.
func rezip(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		var w io.Writer
		var err error
		if e.name == evidence.NameMimetype {
			w, err = zw.CreateRaw(&zip.FileHeader{Name: e.name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(e.data),
				CompressedSize64: uint64(len(e.data)), UncompressedSize64: uint64(len(e.data))})
		} else {
			w, err = zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func find(entries []entry, name string) int {
	for i, e := range entries {
		if e.name == name {
			return i
		}
	}
	return -1
}

func manifestOf(t testing.TB, entries []entry) *evidence.Manifest {
	t.Helper()
	var m evidence.Manifest
	if err := json.Unmarshal(entries[find(entries, evidence.NameManifest)].data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func setManifest(t testing.TB, entries []entry, m *evidence.Manifest) {
	t.Helper()
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	entries[find(entries, evidence.NameManifest)].data = b
}

// reseal makes the manifests and the report agree with the entries again, as a forger who edits
// files and holds the code would: manifest.json's file list (entries added or removed included),
// report.html rendered again from the manifest, and the ASiC manifest.
func reseal(t testing.TB, entries []entry) []entry {
	t.Helper()
	return resealReport(t, entries, true)
}

func resealReport(t testing.TB, entries []entry, render bool) []entry {
	t.Helper()
	if render {
		entries = resealReport(t, entries, false)
		m := manifestOf(t, entries)
		i := slices.IndexFunc(m.Files, func(f evidence.File) bool { return f.Name == evidence.NameReport })
		m.Files = m.Files[:i]
		var b bytes.Buffer
		if err := evidence.RenderReport(&b, m); err != nil {
			t.Fatal(err)
		}
		entries[find(entries, evidence.NameReport)].data = b.Bytes()
	}
	m := manifestOf(t, entries)
	types := map[string]string{}
	for _, f := range m.Files {
		types[f.Name] = f.Type
	}
	m.Files = nil
	for _, e := range entries {
		switch e.name {
		case evidence.NameMimetype, evidence.NameManifest, evidence.NameASiCManifest:
			continue
		}
		s := sha256.Sum256(e.data)
		m.Files = append(m.Files, evidence.File{Name: e.name, SHA256: hex.EncodeToString(s[:]), Size: int64(len(e.data)), Type: types[e.name]})
	}
	setManifest(t, entries, m)
	var names, typs []string
	var data [][]byte
	for _, e := range entries {
		switch e.name {
		case evidence.NameMimetype, evidence.NameASiCManifest:
			continue
		}
		names = append(names, e.name)
		typs = append(typs, types[e.name])
		data = append(data, e.data)
	}
	var b bytes.Buffer
	if err := evidence.WriteASiCManifest(&b, names, typs, data); err != nil {
		t.Fatal(err)
	}
	if i := find(entries, evidence.NameASiCManifest); i >= 0 {
		entries[i].data = b.Bytes()
	}
	return entries
}

// hasFailure reports whether res names a failure of kind whose subject contains subject and whose
// detail contains detail.
func hasFailure(res *evidence.Result, kind, subject, detail string) bool {
	for _, f := range res.Failures {
		if f.Kind == kind && strings.Contains(f.Subject, subject) && strings.Contains(f.Detail, detail) {
			return true
		}
	}
	return false
}
