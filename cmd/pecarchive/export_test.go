package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/tlog"
)

// The export contract, end to end: pecarchive export writes a bundle (in-process, and from a
// running query service), pecarchive verify-bundle checks it offline with the log's public key;
// a batch of selectors makes one bundle; a cited checkpoint gets its consistency proof; nothing
// is left behind when the export fails or matches nothing.
func TestExportAndVerifyBundle(t *testing.T) {
	serviceEnv(t)
	o := archiveConversation(t)
	dir := t.TempDir()
	code, vkey, errOut := runCLI(t, "logkey", "public")
	if code != exitOK {
		t.Fatalf("logkey public: %s", errOut)
	}
	keyFile := filepath.Join(dir, "log.pub")
	os.WriteFile(keyFile, []byte(vkey), 0o644)

	out := filepath.Join(dir, "convocazione.zip")
	code, stdout, errOut := runCLI(t, "export", "--msgid", o.MessageID, "--out", out)
	if code != exitOK || !strings.Contains(stdout, "sha256 ") || !strings.Contains(stdout, "verify-bundle") {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, errOut)
	}
	code, stdout, errOut = runCLI(t, "verify-bundle", out, "--log-key", keyFile)
	if code != exitOK {
		t.Fatalf("verify-bundle: exit %d\n%s\n%s", code, stdout, errOut)
	}
	code, stdout, _ = runCLI(t, "verify-bundle", "--json", "--log-key", keyFile, out)
	var res verifyBundleResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitOK || !res.OK || res.Deliveries != 1 || res.Messages < 4 {
		t.Fatalf("verify-bundle --json: exit %d %+v %v", code, res, err)
	}
	// Never overwritten.
	if code, _, _ := runCLI(t, "export", "--msgid", o.MessageID, "--out", out); code != exitUsage {
		t.Errorf("export over an existing file: exit %d", code)
	}
	// The checkpoint of that bundle, cited by the next one.
	cp := bundleEntry(t, out, evidence.NameCheckpoint)
	cpFile := filepath.Join(dir, "held-checkpoint.txt")
	os.WriteFile(cpFile, cp, 0o644)
	o2 := archiveConversationWith(t, "Secondo avviso", "secondo-avviso@pec.ordine.example.it")
	sels := filepath.Join(dir, "selectors")
	os.WriteFile(sels, []byte("# the 2025 convocation\n--msgid "+o.MessageID+"\n\n--pec-id "+o2.ID+"\n"), 0o644)
	batch := filepath.Join(dir, "batch.zip")
	if code, stdout, errOut := runCLI(t, "export", "--selectors", sels, "--checkpoint", cpFile, "--out", batch); code != exitOK {
		t.Fatalf("batch export: exit %d\n%s\n%s", code, stdout, errOut)
	}
	code, stdout, _ = runCLI(t, "verify-bundle", "--json", "--log-key", vkey, batch)
	res = verifyBundleResult{}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != exitOK || res.Deliveries != 2 {
		t.Fatalf("batch: exit %d %+v %v", code, res, err)
	}
	// Nothing matched: exit 3, no file, no partial file.
	none := filepath.Join(dir, "none.zip")
	if code, _, errOut := runCLI(t, "export", "--msgid", "nobody-sent-this@x", "--out", none); code != exitNoMatch {
		t.Errorf("nothing matched: exit %d %s", code, errOut)
	}
	for _, args := range [][]string{
		{"--msgid", "a"},                       // no --out
		{"--out", filepath.Join(dir, "x.zip")}, // no selector
		{"--out", filepath.Join(dir, "x.zip"), "--msgid", "a", "--pec-id", "b"},
		{"--out", filepath.Join(dir, "x.zip"), "--recipient", "x@y"},
		{"--out", filepath.Join(dir, "x.zip"), "--selectors", filepath.Join(dir, "absent")},
		{"--out", filepath.Join(dir, "x.zip"), "--msgid", "a", "--checkpoint", filepath.Join(dir, "absent")},
		{"--out", filepath.Join(dir, "x.zip"), "--msgid", "a", "extra"},
	} {
		if code, _, _ := runCLI(t, append([]string{"export"}, args...)...); code != exitUsage {
			t.Errorf("export %v: exit %d, want %d", args, code, exitUsage)
		}
	}
	bad := filepath.Join(dir, "bad-selectors")
	os.WriteFile(bad, []byte("--msgid a --pec-id b\n"), 0o644)
	if code, _, _ := runCLI(t, "export", "--selectors", bad, "--out", filepath.Join(dir, "x.zip")); code != exitUsage {
		t.Errorf("a bad selectors file: exit %d", code)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".partial-") || e.Name() == "none.zip" || e.Name() == "x.zip" {
			t.Errorf("left behind: %s", e.Name())
		}
	}

	// From a running query service, as an auditor.
	creds := filepath.Join(dir, "credentials")
	os.WriteFile(creds, []byte("token "+auth.HashToken("revisore-token")+" revisore auditor\n"), 0o600)
	t.Setenv("PECARCHIVE_QUERY_CREDENTIALS_FILE", creds)
	t.Setenv("PECARCHIVE_QUERY_ADDR", startQueryService(t))
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("revisore-token\n"), 0o600)
	t.Setenv("PECARCHIVE_QUERY_TOKEN_FILE", tok)
	remote := filepath.Join(dir, "remote.zip")
	if code, stdout, errOut := runCLI(t, "export", "--msgid", o.MessageID, "--out", remote); code != exitOK {
		t.Fatalf("remote export: exit %d\n%s\n%s", code, stdout, errOut)
	}
	if code, stdout, errOut := runCLI(t, "verify-bundle", remote, "--log-key", keyFile); code != exitOK {
		t.Fatalf("verify the remote bundle: exit %d\n%s\n%s", code, stdout, errOut)
	}
	os.WriteFile(tok, []byte("wrong\n"), 0o600)
	if code, _, errOut := runCLI(t, "export", "--msgid", o.MessageID, "--out", filepath.Join(dir, "denied.zip")); code != exitNotValid || !strings.Contains(errOut, "not authenticated") {
		t.Errorf("wrong token: exit %d %s", code, errOut)
	}
}

// A bundle is given its name without replacing a file of that name, even one that appeared
// while the export ran.
func TestPlaceNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	tmp, out := filepath.Join(dir, ".b.zip.partial"), filepath.Join(dir, "b.zip")
	os.WriteFile(tmp, []byte("bundle"), 0o600)
	os.WriteFile(out, []byte("someone else's"), 0o600)
	if err := placeNew(tmp, out); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("placeNew over an existing file: %v, want ErrExist", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "someone else's" {
		t.Fatalf("the existing file was replaced: %q", b)
	}
	os.Remove(out)
	if err := placeNew(tmp, out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "bundle" {
		t.Fatalf("placed %q", b)
	}
}

// A checkpoint given with --checkpoint is read only up to the size of a checkpoint.
func TestExportRefusesOversizedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "checkpoint.txt")
	os.WriteFile(big, make([]byte, tlog.MaxCheckpointSize+1), 0o600)
	code, _, errOut := runCLI(t, "export", "--msgid", "a@b", "--out", filepath.Join(dir, "b.zip"), "--checkpoint", big)
	if code != exitUsage || !strings.Contains(errOut, "checkpoint.txt") {
		t.Fatalf("export --checkpoint of %d bytes: exit %d %s", tlog.MaxCheckpointSize+1, code, errOut)
	}
}
