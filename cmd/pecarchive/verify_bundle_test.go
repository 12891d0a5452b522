package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// testBundle writes a bundle of one pectest conversation to a file and returns its path and the
// log's public key.
func testBundle(t *testing.T) (path, vkey string) {
	t.Helper()
	ctx := context.Background()
	p, err := pectest.NewProvider(21, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Conversation(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := evidencetest.New(smime.NewTrustStore(p.CA.Root, p.CA.Intermediate))
	if err != nil {
		t.Fatal(err)
	}
	d := a.AddConversation(ctx, c)
	b, err := a.Bundle([]evidence.Delivery{d}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := evidence.Write(ctx, &buf, b, a); err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "bundle.zip")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, a.VKey
}

func TestVerifyBundleCLI(t *testing.T) {
	path, vkey := testBundle(t)
	keyFile := filepath.Join(t.TempDir(), "log.pub")
	if err := os.WriteFile(keyFile, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCLI(t, "verify-bundle", path, "--log-key", keyFile)
	if code != exitOK || !strings.Contains(out, "checkpoint checked against the key given: OK") || errOut != "" {
		t.Fatalf("with a key: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "verify-bundle", "--log-key", vkey, path)
	if code != exitOK {
		t.Fatalf("with the key itself: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "verify-bundle", path)
	if code != exitOK || !strings.Contains(errOut, "WARNING:") || !strings.Contains(errOut, "--log-key") || !strings.Contains(out, "BUNDLED key only") {
		t.Fatalf("without a key: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "verify-bundle", "--json", "--log-key", keyFile, path)
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitOK || res["ok"] != true || res["log_key"] != "given" {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	if f, ok := res["failures"].([]any); !ok || len(f) != 0 {
		t.Fatalf("--json failures: %v", res["failures"])
	}
	// A checkpoint the auditor holds: the bundle's own holds; a file that is not one is a
	// failure named, a file that is missing a usage error.
	cp := bundleEntry(t, path, evidence.NameCheckpoint)
	held := filepath.Join(t.TempDir(), "held.txt")
	os.WriteFile(held, cp, 0o644)
	if code, out, errOut := runCLI(t, "verify-bundle", path, "--log-key", keyFile, "--checkpoint", held); code != exitOK {
		t.Fatalf("--checkpoint: exit %d\n%s\n%s", code, out, errOut)
	}
	os.WriteFile(held, []byte("not a checkpoint\n"), 0o644)
	if code, out, _ := runCLI(t, "verify-bundle", path, "--log-key", keyFile, "--checkpoint", held); code != exitNotValid || !strings.Contains(out, "signature checkpoint given #1") {
		t.Fatalf("a bad --checkpoint: exit %d\n%s", code, out)
	}
	if code, _, _ := runCLI(t, "verify-bundle", path, "--checkpoint", filepath.Join(t.TempDir(), "absent")); code != exitUsage {
		t.Fatalf("a missing --checkpoint file: exit %d", code)
	}
}

func TestVerifyBundleCLIFailures(t *testing.T) {
	path, vkey := testBundle(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Drop one message and change a byte of the checkpoint: two named failures at least, each on
	// its own line.
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	dropped := ""
	for _, f := range zr.File {
		if strings.HasPrefix(f.Name, "messages/") && dropped == "" {
			dropped = f.Name
			continue
		}
		if err := zw.Copy(f); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	bad := filepath.Join(t.TempDir(), "bad.zip")
	os.WriteFile(bad, buf.Bytes(), 0o644)
	code, out, _ := runCLI(t, "verify-bundle", "--log-key", vkey, bad)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitNotValid || len(lines) < 2 || !strings.Contains(out, "file "+dropped+": evidence: missing file") || !strings.Contains(lines[len(lines)-1], "FAILED") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "verify-bundle", "--json", "--log-key", vkey, bad)
	var res struct {
		OK       bool               `json:"ok"`
		Failures []evidence.Failure `json:"failures"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitNotValid || res.OK || len(res.Failures) == 0 {
		t.Fatalf("--json: exit %d %v\n%s", code, err, out)
	}
	// Not a bundle at all: a failure too, not a usage error.
	notZip := filepath.Join(t.TempDir(), "x.zip")
	os.WriteFile(notZip, []byte("hello"), 0o644)
	if code, out, _ := runCLI(t, "verify-bundle", notZip); code != exitNotValid || !strings.Contains(out, "not a ZIP archive") {
		t.Fatalf("not a zip: exit %d\n%s", code, out)
	}
}

func TestVerifyBundleCLIUsage(t *testing.T) {
	path, _ := testBundle(t)
	for _, args := range [][]string{
		{"verify-bundle"},
		{"verify-bundle", path, path},
		{"verify-bundle", filepath.Join(t.TempDir(), "absent.zip")},
		{"verify-bundle", t.TempDir()},
		{"verify-bundle", "--log-key", filepath.Join(t.TempDir(), "absent.pub"), path},
		{"verify-bundle", "--nope", path},
	} {
		if code, _, _ := runCLI(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// bundleEntry returns the bytes of the entry called name of the bundle in the file path.
func bundleEntry(t *testing.T, path, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es := evidencetest.Unzip(t, data)
	i := evidencetest.Find(es, name)
	if i < 0 {
		t.Fatalf("%s holds no %s", path, name)
	}
	return es[i].Data
}
