package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/tlog"
)

// archiveConversation stores one notice to two members (one delivered, one with a forged
// delivery receipt) in the archive the settings name, verifying against the test provider.
func archiveConversation(t *testing.T) *pectest.Original {
	t.Helper()
	return archiveConversationWith(t, "Convocazione assemblea", "convocazione-1@pec.ordine.example.it")
}

// archiveConversationWith is archiveConversation with the notice's subject and Message-ID.
func archiveConversationWith(t *testing.T, subject, msgid string) *pectest.Original {
	t.Helper()
	ctx := context.Background()
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := pectest.NewProvider(5, nil)
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := prov.Peer(nil)
	forger, _ := peer.With(func(o *pectest.Options) { o.Defect = pectest.DefectForged })
	v, err := smime.New(smime.Config{Anchors: smime.NewTrustStore(prov.CA.Root)})
	if err != nil {
		t.Fatal(err)
	}
	loc, closeLocal, err := s.openLocal(ctx, &archive.Config{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	defer closeLocal()
	o, err := prov.Original(&pectest.Original{To: []string{"mario.rossi@pec.esempio.it", "anna.bianchi@pec.esempio.it"},
		Subject: subject, MessageID: msgid})
	if err != nil {
		t.Fatal(err)
	}
	acc, _ := prov.Acceptance(pectest.Params{Original: o})
	del, _ := peer.Delivery(pectest.Params{Original: o, Recipient: "mario.rossi@pec.esempio.it", ReceiptType: pec.ReceiptCompleta})
	bad, _ := forger.Delivery(pectest.Params{Original: o, Recipient: "anna.bianchi@pec.esempio.it"})
	for _, raw := range [][]byte{o.Raw, acc.Bytes, del.Bytes, bad.Bytes} {
		if _, err := loc.Archive.Store(ctx, raw, archive.Source{Path: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// The prove contract: the JSON shape, exit 0 when something matched, 3 when nothing did, 2 on
// usage errors, 1 on other failures; in-process when PECARCHIVE_QUERY_ADDR is unset (recorded as
// the local user), and against a running query service when it is set.
func TestProve(t *testing.T) {
	serviceEnv(t)
	o := archiveConversation(t)

	code, out, errOut := runCLI(t, "prove", "--json", "--msgid", "<"+o.MessageID+">")
	if code != exitOK {
		t.Fatalf("prove --json: exit %d: %s", code, errOut)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	for _, k := range []string{"checkpoint", "messages"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	var got proveJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	// Every field of the contract is present, unknown ones empty, never absent.
	msg := raw["messages"].([]any)[0].(map[string]any)
	for _, k := range []string{"msgid", "pec_id", "subject", "sender", "sent_at", "sha256", "recipients"} {
		if _, ok := msg[k]; !ok {
			t.Errorf("message field %q absent", k)
		}
	}
	rcpt := msg["recipients"].([]any)[0].(map[string]any)
	for _, k := range []string{"address", "verdict", "explanation_it", "explanation_en", "at", "receipts"} {
		if _, ok := rcpt[k]; !ok {
			t.Errorf("recipient field %q absent", k)
		}
	}
	rc := rcpt["receipts"].([]any)[0].(map[string]any)
	for _, k := range []string{"sha256", "kind", "receipt_type", "error", "provider", "time", "signed_at", "valid", "trusted", "reasons", "leaf_index", "inclusion_proof"} {
		if _, ok := rc[k]; !ok {
			t.Errorf("receipt field %q absent", k)
		}
	}
	if len(got.Messages) != 1 || got.Messages[0].MsgID != o.MessageID || got.Messages[0].Subject != "Convocazione assemblea" {
		t.Fatalf("messages: %+v", got.Messages)
	}
	verdicts := map[string]string{}
	for _, r := range got.Messages[0].Recipients {
		verdicts[r.Address] = r.Verdict
	}
	if verdicts["mario.rossi@pec.esempio.it"] != "DELIVERED" || verdicts["anna.bianchi@pec.esempio.it"] != "ACCEPTED_ONLY" {
		t.Errorf("verdicts %v", verdicts)
	}
	// The in-process prove published a checkpoint: every receipt is proven against it.
	s, _ := loadSettings("")
	skey, err := s.logKey()
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := tlog.VerifierKey(skey)
	cp, err := tlog.VerifyCheckpoint([]byte(got.Checkpoint.Text), vkey)
	if err != nil || base64.StdEncoding.EncodeToString(cp.Hash) != got.Checkpoint.Root || cp.Size != got.Checkpoint.Size {
		t.Fatalf("checkpoint: %+v, %v", got.Checkpoint, err)
	}
	for _, r := range got.Messages[0].Recipients {
		for _, rc := range r.Receipts {
			if len(rc.InclusionProof) == 0 {
				t.Errorf("receipt %s of %s without a proof", rc.SHA256, r.Address)
			}
		}
	}

	code, out, _ = runCLI(t, "prove", "--pec-id", o.ID)
	if code != exitOK || !strings.Contains(out, "mario.rossi@pec.esempio.it") || !strings.Contains(out, "DELIVERED") ||
		!strings.Contains(out, "Consegnato") || !strings.Contains(out, "SIGNATURE FAILS") || !strings.Contains(out, "signed checkpoint") {
		t.Errorf("readable answer: exit %d\n%s", code, out)
	}
	t.Logf("readable answer:\n%s", out)
	if code, out, _ := runCLI(t, "prove", "--json", "--msgid", "nobody-sent-this@x"); code != exitNoMatch || !strings.Contains(out, `"messages":[]`) {
		t.Errorf("nothing matched: exit %d %s", code, out)
	}
	if code, _, _ := runCLI(t, "prove", "--sender", o.From, "--since", "2000-01-01T00:00:00Z"); code != exitOK {
		t.Errorf("by sender: exit %d", code)
	}
	for _, args := range [][]string{{}, {"--msgid", "a", "--pec-id", "b"}, {"--recipient", "x@y"}, {"--sender", "x@y", "--since", "yesterday"}, {"--msgid", "a", "extra"}} {
		if code, _, _ := runCLI(t, append([]string{"prove"}, args...)...); code != exitUsage {
			t.Errorf("prove %v: exit %d, want %d", args, code, exitUsage)
		}
	}

	// Every read was recorded, as the local user.
	pool, err := s.openPool(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	var who string
	if err := pool.QueryRow(context.Background(), `SELECT count(*), min(principal) FROM accesses`).Scan(&n, &who); err != nil || n != 4 || !strings.HasPrefix(who, "local:") {
		t.Errorf("%d access rows by %q (%v), want 4 by the local user", n, who, err)
	}

	// Read by a person, nothing matched prints no checkpoint under no proofs: only the message.
	if code, out, errOut := runCLI(t, "prove", "--msgid", "nobody-sent-this@x"); code != exitNoMatch || out != "" ||
		!strings.Contains(errOut, "no archived message matches") {
		t.Errorf("prove of nothing: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Against a running query service.
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("token "+auth.HashToken("segreteria-token")+" segreteria backoffice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PECARCHIVE_QUERY_CREDENTIALS_FILE", creds)
	t.Setenv("PECARCHIVE_QUERY_ADDR", startQueryService(t))
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("segreteria-token\n"), 0o600)
	t.Setenv("PECARCHIVE_QUERY_TOKEN_FILE", tok)
	code, out, errOut = runCLI(t, "prove", "--json", "--msgid", o.MessageID)
	var remote proveJSON
	if code != exitOK || json.Unmarshal([]byte(out), &remote) != nil || len(remote.Messages) != 1 {
		t.Fatalf("remote prove: exit %d %s %s", code, out, errOut)
	}
	if sum := hex.EncodeToString(sha256Of(o.Raw)); remote.Messages[0].SHA256 != sum {
		t.Errorf("sha256 %s, want the original's %s", remote.Messages[0].SHA256, sum)
	}
	os.WriteFile(tok, []byte("wrong\n"), 0o600)
	if code, _, errOut := runCLI(t, "prove", "--msgid", o.MessageID); code != exitNotValid || !strings.Contains(errOut, "not authenticated") {
		t.Errorf("wrong token: exit %d %s", code, errOut)
	}
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM accesses WHERE principal = 'segreteria'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("remote reads recorded: %d, %v", n, err)
	}
}

// startQueryService runs the query service from the settings on a free loopback port until the
// test ends and returns its address once it listens.
func startQueryService(t *testing.T) string {
	t.Helper()
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serveQuery(ctx, s, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)), ready, nil)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("query service: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("query service: %v", err)
		}
	})
	return addr
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
