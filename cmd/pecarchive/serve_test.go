package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

// serve runs the three services in one process on one archive: a notice put in the IMAP mailbox
// is pulled by ingest, proved by the query service (the read recorded through the same archive),
// and a message imported over the archive's own gRPC API lands in the same archive.
func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	d := testenv.StartDovecot(t)
	ingestEnv(t, d, "serve", 1) // the schema, data folder, log key and mailbox file
	prov, err := pectest.NewProvider(7, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := prov.Original(&pectest.Original{To: []string{"mario.rossi@pec.esempio.it"}, Subject: "Convocazione", MessageID: "serve-1@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := prov.Acceptance(pectest.Params{Original: o})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, d, "serve", "INBOX", [][]byte{o.Raw})

	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("token "+auth.HashToken("seg-token")+" segreteria backoffice\n"+
		"token "+auth.HashToken("import-token")+" importer ingest\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PECARCHIVE_CREDENTIALS_FILE", creds)
	t.Setenv("PECARCHIVE_INGEST_METRICS_ADDR", "off")
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 2)
	done := make(chan error, 1)
	go func() {
		done <- serveAll(ctx, s, "127.0.0.1:0", "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)), ready)
	}()
	addrs := map[string]string{}
	for len(addrs) < 2 {
		select {
		case r := <-ready:
			name, addr, _ := strings.Cut(r, " ")
			addrs[name] = addr
		case err := <-done:
			t.Fatalf("serve: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("serve: not listening after 30 s")
		}
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	// The notice ingest pulls from the mailbox is proved by the query service.
	t.Setenv("PECARCHIVE_QUERY_ADDR", addrs["query"])
	tok := filepath.Join(dir, "seg-token")
	os.WriteFile(tok, []byte("seg-token\n"), 0o600)
	t.Setenv("PECARCHIVE_QUERY_TOKEN_FILE", tok)
	var got proveJSON
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out, errOut := runCLI(t, "prove", "--json", "--msgid", o.MessageID)
		if code == exitOK {
			if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Messages) != 1 {
				t.Fatalf("prove: %v\n%s", err, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prove: exit %d after 30 s: %s %s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sum := strings.ToLower(got.Messages[0].SHA256); sum == "" {
		t.Errorf("the notice pulled by ingest has no original: %+v", got.Messages[0])
	}

	// A message imported over the archive's gRPC API lands in the same archive.
	file := filepath.Join(dir, "accettazione.eml")
	os.WriteFile(file, acc.Bytes, 0o600)
	itok := filepath.Join(dir, "import-token")
	os.WriteFile(itok, []byte("import-token\n"), 0o600)
	t.Setenv("PECARCHIVE_ARCHIVE_ADDR", addrs["archive"])
	t.Setenv("PECARCHIVE_ARCHIVE_TOKEN_FILE", itok)
	if code, out, errOut := runCLI(t, "import", file); code != exitOK || !strings.Contains(out, "1 new") {
		t.Fatalf("import over the archive's API: exit %d %s %s", code, out, errOut)
	}

	// Every read is recorded, under the caller's name, by the one archive.
	pool, err := s.openPool(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM accesses WHERE principal = 'segreteria'`).Scan(&n); err != nil || n < 1 {
		t.Errorf("reads recorded for segreteria: %d (%v)", n, err)
	}
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM messages`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d messages in the archive (%v), want the pulled notice and the imported acceptance", n, err)
	}

	// serve refuses to run beside another archive, and a broken mailbox file, before starting.
	if code, _, errOut := runCLI(t, "serve"); code != exitUsage || !strings.Contains(errOut, "PECARCHIVE_ARCHIVE_ADDR") {
		t.Errorf("serve with PECARCHIVE_ARCHIVE_ADDR set: exit %d %s", code, errOut)
	}
	t.Setenv("PECARCHIVE_ARCHIVE_ADDR", "")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("mailboxes: [\n"), 0o600)
	t.Setenv("PECARCHIVE_MAILBOXES_FILE", bad)
	if code, _, errOut := runCLI(t, "serve", "--listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0"); code != exitUsage {
		t.Errorf("serve with a broken mailbox file: exit %d %s", code, errOut)
	}
}
