package evidencetest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"html"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
)

// Entry is one file of a bundle that a test rewrites.
type Entry struct {
	Name string
	Data []byte
}

// Unzip returns the entries of a bundle in order.
func Unzip(tb testing.TB, data []byte) []Entry {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		tb.Fatal(err)
	}
	var out []Entry
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, Entry{f.Name, b})
	}
	return out
}

// Rezip writes entries as a bundle: mimetype stored first, the rest deflated.
func Rezip(tb testing.TB, entries []Entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		var w io.Writer
		var err error
		if e.Name == evidence.NameMimetype {
			w, err = zw.CreateRaw(&zip.FileHeader{Name: e.Name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(e.Data),
				CompressedSize64: uint64(len(e.Data)), UncompressedSize64: uint64(len(e.Data))})
		} else {
			w, err = zw.CreateHeader(&zip.FileHeader{Name: e.Name, Method: zip.Deflate})
		}
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(e.Data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Find returns the index of the entry called name, -1 when there is none.
func Find(entries []Entry, name string) int {
	return slices.IndexFunc(entries, func(e Entry) bool { return e.Name == name })
}

// ManifestOf decodes manifest.json.
func ManifestOf(tb testing.TB, entries []Entry) *evidence.Manifest {
	tb.Helper()
	var m evidence.Manifest
	if err := json.Unmarshal(entries[Find(entries, evidence.NameManifest)].Data, &m); err != nil {
		tb.Fatal(err)
	}
	return &m
}

// SetManifest replaces manifest.json with m.
func SetManifest(tb testing.TB, entries []Entry, m *evidence.Manifest) {
	tb.Helper()
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		tb.Fatal(err)
	}
	entries[Find(entries, evidence.NameManifest)].Data = b
}

// Reseal makes the bundle agree with itself again after entries were edited, as a forger who
// holds the code would: manifest.json's file list (entries added or removed included), when
// render is set report.html rendered again from the manifest, and the ASiC manifest (written by
// a writer of this package's own, not evidence's).
func Reseal(tb testing.TB, entries []Entry, render bool) []Entry {
	tb.Helper()
	if render {
		entries = Reseal(tb, entries, false)
		m := ManifestOf(tb, entries)
		i := slices.IndexFunc(m.Files, func(f evidence.File) bool { return f.Name == evidence.NameReport })
		m.Files = m.Files[:i]
		var b bytes.Buffer
		if err := evidence.RenderReport(&b, m); err != nil {
			tb.Fatal(err)
		}
		entries[Find(entries, evidence.NameReport)].Data = b.Bytes()
	}
	m := ManifestOf(tb, entries)
	types := map[string]string{}
	for _, f := range m.Files {
		types[f.Name] = f.Type
	}
	m.Files = nil
	for _, e := range entries {
		switch e.Name {
		case evidence.NameMimetype, evidence.NameManifest, evidence.NameASiCManifest:
			continue
		}
		s := sha256.Sum256(e.Data)
		m.Files = append(m.Files, evidence.File{Name: e.Name, SHA256: hex.EncodeToString(s[:]), Size: int64(len(e.Data)), Type: types[e.Name]})
	}
	SetManifest(tb, entries, m)
	var x strings.Builder
	x.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.WriteString(`<ASiCManifest xmlns="` + evidence.NamespaceASiC + `" xmlns:d="` + evidence.NamespaceDSig + `">`)
	for _, e := range entries {
		switch e.Name {
		case evidence.NameMimetype, evidence.NameASiCManifest:
			continue
		}
		s := sha256.Sum256(e.Data)
		x.WriteString(`<DataObjectReference URI="` + html.EscapeString(e.Name) + `" MimeType="` + html.EscapeString(types[e.Name]) + `">`)
		x.WriteString(`<d:DigestMethod Algorithm="` + evidence.DigestSHA256URI + `"/>`)
		x.WriteString(`<d:DigestValue>` + base64.StdEncoding.EncodeToString(s[:]) + `</d:DigestValue></DataObjectReference>`)
	}
	x.WriteString("</ASiCManifest>\n")
	if i := Find(entries, evidence.NameASiCManifest); i >= 0 {
		entries[i].Data = []byte(x.String())
	}
	return entries
}

// HasFailure reports whether res names a failure of kind whose subject contains subject and whose
// detail contains detail.
func HasFailure(res *evidence.Result, kind, subject, detail string) bool {
	for _, f := range res.Failures {
		if f.Kind == kind && strings.Contains(f.Subject, subject) && strings.Contains(f.Detail, detail) {
			return true
		}
	}
	return false
}

// Failures lists res's failures, one per line, for test messages.
func Failures(res *evidence.Result) string {
	var b strings.Builder
	for _, f := range res.Failures {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}
