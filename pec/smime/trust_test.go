package smime

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pecarchive/pecarchive/internal/samples"
)

func TestDefaultTrustStore(t *testing.T) {
	s := DefaultTrustStore()
	if s.Len() != 2 {
		t.Fatalf("%d anchors", s.Len())
	}
	var names []string
	var ders [][]byte
	for _, c := range s.Certificates() {
		names = append(names, c.Subject.CommonName)
		ders = append(ders, c.Raw)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"Actalis Authentication Root CA", "AgID CA1"}) {
		t.Errorf("anchors %v", names)
	}
	slices.SortFunc(ders, bytes.Compare)
	h := sha256.New()
	for _, d := range ders {
		h.Write(d)
	}
	if s.ID() != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("ID %s", s.ID())
	}
	if (*TrustStore)(nil).ID() != s.ID() {
		t.Errorf("nil store is not the default")
	}
	// The embedded anchors are the certificates of the shared samples.
	sample, err := LoadPEM(samples.Path(t, "certs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Certificates() {
		if !sample.Contains(c) {
			t.Errorf("embedded %s not in the samples", c.Subject.CommonName)
		}
	}
	if sample.Len() != 3 { // Actalis, and the Aruba signer with AgID CA1
		t.Errorf("sample anchors %d", sample.Len())
	}
}

func TestLoadPEM(t *testing.T) {
	dir := t.TempDir()
	def := DefaultTrustStore()
	certs := def.Certificates()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pemFile := write("a.pem", append([]byte("text before\n"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[0].Raw})...))
	derFile := write("b.der", certs[1].Raw)
	write("ignored.txt", []byte("not a certificate"))

	s, err := LoadPEM(pemFile, derFile)
	if err != nil || s.ID() != def.ID() {
		t.Fatalf("files: %v", err)
	}
	s, err = LoadPEM(dir)
	if err != nil || s.ID() != def.ID() {
		t.Fatalf("dir: %v", err)
	}
	if m := Merge(s, def, nil); m.ID() != def.ID() || m.Len() != 2 {
		t.Errorf("merge %d", m.Len())
	}
	if p, err := ParsePEM(def.PEM()); err != nil || p.ID() != def.ID() {
		t.Errorf("PEM round trip: %v", err)
	}
	empty := t.TempDir()
	if _, err := LoadPEM(empty); !errors.Is(err, ErrNoCertificates) {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := LoadPEM(filepath.Join(dir, "ignored.txt")); !errors.Is(err, ErrNoCertificates) {
		t.Errorf("no certs: %v", err)
	}
	bad := write("bad.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 1, 2}}))
	if _, err := LoadPEM(bad); !errors.Is(err, ErrBadCertificate) {
		t.Errorf("bad cert: %v", err)
	}
	if _, err := LoadPEM(filepath.Join(dir, "missing.pem")); err == nil {
		t.Errorf("missing file accepted")
	}
}
