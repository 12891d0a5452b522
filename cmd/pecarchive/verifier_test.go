package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
)

// testProviders returns a test PEC provider (ProviderA) and its peer (ProviderB) under one test
// CA, and a file holding that CA's root.
func testProviders(t *testing.T) (a, b *pectest.Provider, rootFile string) {
	t.Helper()
	a, err := pectest.NewProvider(41, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = a.Peer(nil); err != nil {
		t.Fatal(err)
	}
	rootFile = filepath.Join(t.TempDir(), "test-ca.pem")
	if err := os.WriteFile(rootFile, a.CA.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return a, b, rootFile
}

// acceptance returns a new acceptance receipt signed by p.
func acceptance(t *testing.T, p *pectest.Provider, n int) []byte {
	t.Helper()
	o, err := p.Original(&pectest.Original{Subject: fmt.Sprintf("Convocazione n. %d", n)})
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.Acceptance(pectest.Params{Original: o})
	if err != nil {
		t.Fatal(err)
	}
	return g.Bytes
}

// storeInProcess opens the archive in-process from the environment's settings and stores raw.
func storeInProcess(t *testing.T, raw []byte) (archive.Record, error) {
	t.Helper()
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, cleanup, err := s.openArchive(ctx, nil)
	if err != nil {
		return archive.Record{}, err
	}
	defer cleanup()
	return a.Store(ctx, raw, archive.Source{Path: "verifier_test"})
}

// The archive's verifier takes PECARCHIVE_TRUST and PECARCHIVE_PROVIDER_INDEX: a message signed
// under a test CA is trusted only with that CA added, and only if a configured index lists its
// signer; an index whose signature does not verify stops the archive from opening.
func TestArchiveTrustSettings(t *testing.T) {
	serviceEnv(t)
	a, b, root := testProviders(t)
	check := func(name string, raw []byte, trusted bool, reason string) {
		t.Helper()
		r, err := storeInProcess(t, raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !r.Verdict.Valid || r.Verdict.Trusted != trusted || (reason != "" && !slices.Contains(r.Reasons, reason)) {
			t.Errorf("%s: valid %v, trusted %v, reasons %v; want trusted %v with %q", name, r.Verdict.Valid, r.Verdict.Trusted, r.Reasons, trusted, reason)
		}
	}
	check("built-in anchors only", acceptance(t, a, 1), false, smime.ReasonUntrusted)
	t.Setenv("PECARCHIVE_TRUST", root)
	check("PECARCHIVE_TRUST=file", acceptance(t, a, 2), true, "")
	t.Setenv("PECARCHIVE_TRUST", "/nonexistent"+string(filepath.ListSeparator)+filepath.Dir(root))
	if _, err := storeInProcess(t, acceptance(t, a, 3)); err == nil || !strings.Contains(err.Error(), "PECARCHIVE_TRUST") {
		t.Errorf("a missing trust path: %v, want an error naming PECARCHIVE_TRUST", err)
	}
	t.Setenv("PECARCHIVE_TRUST", filepath.Dir(root))
	check("PECARCHIVE_TRUST=folder", acceptance(t, a, 4), true, "")

	// A signed index listing only provider A.
	signed, err := a.CA.SignIndex(pectest.IndexLDIF(a), a.CA.Time)
	if err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(t.TempDir(), "igpec.ldif.p7m")
	os.WriteFile(index, signed, 0o644)
	t.Setenv("PECARCHIVE_PROVIDER_INDEX", index)
	check("listed in the index", acceptance(t, a, 5), true, "")
	check("not listed in the index", acceptance(t, b, 6), false, smime.ReasonNotInIndex)

	// The index's signature chains to the test CA only: without PECARCHIVE_TRUST it is refused.
	t.Setenv("PECARCHIVE_TRUST", "")
	if _, err := storeInProcess(t, acceptance(t, a, 7)); err == nil || !strings.Contains(err.Error(), "PECARCHIVE_PROVIDER_INDEX") {
		t.Errorf("an index signed by an unknown CA: %v, want an error naming PECARCHIVE_PROVIDER_INDEX", err)
	}
	t.Setenv("PECARCHIVE_TRUST", root)
	tampered := slices.Clone(signed)
	i := strings.Index(string(tampered), "mailReceipt: ")
	tampered[i+len("mailReceipt: ")] ^= 1
	os.WriteFile(index, tampered, 0o644)
	if _, err := storeInProcess(t, acceptance(t, a, 8)); err == nil || !strings.Contains(err.Error(), "PECARCHIVE_PROVIDER_INDEX") {
		t.Errorf("a tampered index: %v, want an error naming PECARCHIVE_PROVIDER_INDEX", err)
	}

	// The archive service reads the same settings.
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	if err := serveArchive(context.Background(), s, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "PECARCHIVE_PROVIDER_INDEX") {
		t.Errorf("archive service with a tampered index: %v, want a refusal", err)
	}
}
