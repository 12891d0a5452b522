package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
)

// importFields are the fields of each `pecarchive import --json` message line (the contract's,
// then the extensions), all always present.
var importFields = []string{"path", "index", "sha256", "new", "leaf_index", "kind", "error", "valid", "trusted"}

// importSeed is the test provider's seed of importSet.
const importSeed = 23

type namedMessage struct {
	name string
	raw  []byte
}

// importSet is the traffic of the test provider (every kind and failure, and a whole
// conversation), two messages with lines an mbox must escape and mixed line ends, and the shared
// samples where they are present.
func importSet(t *testing.T) []namedMessage {
	t.Helper()
	var set []namedMessage
	for _, g := range pectest.AllKinds(importSeed) {
		set = append(set, namedMessage{g.Name, g.Bytes})
	}
	p, err := pectest.NewProvider(importSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := p.Conversation(&pectest.ConversationConfig{Original: &pectest.Original{Subject: "Convocazione assemblea"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range conv.Messages {
		set = append(set, namedMessage{fmt.Sprintf("conversation-%02d-%s", i, g.Name), g.Bytes})
	}
	set = append(set,
		namedMessage{"escapes-crlf", []byte("From: a@example.it\r\nSubject: From lines\r\n\r\nFrom the start of a line\r\n>From one\r\n>>From two\r\n\r\nFrom \r\n")},
		namedMessage{"escapes-mixed", []byte("Subject: mixed\n\r\nFrom here\n\r\n>From there\r\n\n\n")},
	)
	if dir := samples.Dir(); dir != "" {
		for _, rel := range []string{"real/aruba-busta-trasporto-2023-08-18.eml", "anonymised/accettazione.eml",
			"anonymised/consegna.eml", "anonymised/email_2.eml", "anonymised/email_3.eml"} {
			b, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			set = append(set, namedMessage{"sample-" + filepath.Base(rel), b})
		}
	} else {
		t.Log("no shared samples: importing the test provider's traffic only")
	}
	return set
}

// writeEMLFolder writes each message as a .eml file, half of them in a subfolder.
func writeEMLFolder(t *testing.T, dir string, set []namedMessage) {
	t.Helper()
	for i, m := range set {
		d := dir
		if i%2 == 1 {
			d = filepath.Join(dir, "sub", "folder")
		}
		write(t, filepath.Join(d, fmt.Sprintf("%03d-%s.eml", i, m.name)), m.raw)
	}
}

// writeMboxFiles writes the set as mbox files (mboxrd escaping, blank lines between messages
// with the given line end). A message that does not end with a line feed can only be the last
// of its file: each such message ends a file of its own.
func writeMboxFiles(t *testing.T, dir string, set []namedMessage, eol string) {
	t.Helper()
	var b bytes.Buffer
	n := 0
	flush := func() {
		if b.Len() > 0 {
			write(t, filepath.Join(dir, fmt.Sprintf("archive-%d.mbox", n)), b.Bytes())
			n++
			b.Reset()
		}
	}
	for _, m := range set {
		fmt.Fprintf(&b, "From MAILER-DAEMON Wed Nov 25 10:00:00 2026%s", eol)
		for _, line := range bytes.SplitAfter(m.raw, []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				b.WriteByte('>')
			}
			b.Write(line)
		}
		if !bytes.HasSuffix(m.raw, []byte("\n")) {
			flush()
			continue
		}
		b.WriteString(eol)
	}
	flush()
}

// writeMaildir writes the set as a Maildir with a Maildir++ folder: messages in cur/ and new/,
// a message being delivered in tmp/ (not read) and the index files of a mail server.
func writeMaildir(t *testing.T, dir string, set []namedMessage) {
	t.Helper()
	for i, m := range set {
		d := []string{"cur", "new", ".Sent/cur"}[i%3]
		name := fmt.Sprintf("1764061200.M%dP42.mx,S=%d:2,S", i, len(m.raw))
		if strings.HasSuffix(d, "new") {
			name = fmt.Sprintf("1764061200.M%dP42.mx", i)
		}
		write(t, filepath.Join(dir, d, name), m.raw)
	}
	for _, d := range []string{"tmp", ".Sent/new", ".Sent/tmp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	write(t, filepath.Join(dir, "tmp", "1764061300.M1P42.mx"), []byte("Subject: being delivered\r\n\r\n"))
	write(t, filepath.Join(dir, "dovecot-uidlist"), []byte("3 V1764061200 N2\n"))
	write(t, filepath.Join(dir, ".Sent", "maildirfolder"), nil)
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// importJSON runs `pecarchive import --json` and returns its message lines and summary.
func importJSON(t *testing.T, wantCode int, paths ...string) ([]map[string]any, map[string]any, string) {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"import", "--json"}, paths...)...)
	if code != wantCode {
		t.Fatalf("import: exit %d, want %d; stderr:\n%s", code, wantCode, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res []map[string]any
	for _, l := range lines[:len(lines)-1] {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		for _, f := range importFields {
			if v, ok := m[f]; !ok || v == nil {
				t.Errorf("line %q: field %q absent or null", l, f)
			}
		}
		res = append(res, m)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Fatalf("summary %q: %v", lines[len(lines)-1], err)
	}
	return res, sum, errOut
}

func wantSummary(t *testing.T, sum map[string]any, files, messages, created, already, refused int) {
	t.Helper()
	want := map[string]int{"files": files, "messages": messages, "new": created, "already_archived": already, "refused": refused}
	for k, v := range want {
		if sum[k] != float64(v) {
			t.Errorf("summary %s = %v, want %d (%v)", k, sum[k], v, sum)
		}
	}
}

// leaves returns the SHA-256 of each message line with its leaf index, checking that each
// SHA-256 comes with one leaf.
func leaves(t *testing.T, res []map[string]any) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for _, r := range res {
		if r["error"] != "" {
			t.Errorf("%v #%v: %v", r["path"], r["index"], r["error"])
			continue
		}
		sha, leaf := r["sha256"].(string), r["leaf_index"].(float64)
		if l, ok := m[sha]; ok && l != leaf {
			t.Errorf("%s: leaves %v and %v", sha, l, leaf)
		}
		m[sha] = leaf
	}
	return m
}

func sums(set []namedMessage) map[string]bool {
	m := map[string]bool{}
	for _, x := range set {
		s := sha256.Sum256(x.raw)
		m[hex.EncodeToString(s[:])] = true
	}
	return m
}

// The same messages as .eml files, as mbox files and as a Maildir are the same messages to the
// archive: every byte kept, the same leaves; and each file is recorded as a source.
func TestImportFormatsSameLeaves(t *testing.T) {
	serviceEnv(t)
	set := importSet(t)
	want := sums(set)
	dir := t.TempDir()
	emlDir, mboxDir, mboxCRLF, maildir := filepath.Join(dir, "eml"), filepath.Join(dir, "mbox"), filepath.Join(dir, "mbox-crlf"), filepath.Join(dir, "Maildir")
	writeEMLFolder(t, emlDir, set)
	writeMboxFiles(t, mboxDir, set, "\n")
	writeMboxFiles(t, mboxCRLF, set, "\r\n")
	writeMaildir(t, maildir, set)

	res, sum, _ := importJSON(t, exitOK, emlDir)
	wantSummary(t, sum, len(set), len(set), len(want), len(set)-len(want), 0)
	first := leaves(t, res)
	if len(first) != len(want) {
		t.Fatalf("%d distinct messages archived, want %d", len(first), len(want))
	}
	for sha := range want {
		if _, ok := first[sha]; !ok {
			t.Errorf("%s not archived", sha)
		}
	}
	for _, d := range []string{mboxDir, mboxCRLF, maildir} {
		res, sum, _ := importJSON(t, exitOK, d)
		nfiles := int(sum["files"].(float64))
		if d == maildir && nfiles != len(set) || d != maildir && nfiles < 2 {
			t.Errorf("%s: %d files", d, nfiles)
		}
		wantSummary(t, sum, nfiles, len(set), 0, len(set), 0)
		got := leaves(t, res)
		if len(got) != len(first) {
			t.Errorf("%s: %d distinct messages, want %d", d, len(got), len(first))
		}
		for sha, leaf := range got {
			if l, ok := first[sha]; !ok || l != leaf {
				t.Errorf("%s: %s at leaf %v; as .eml files: %v, %v", d, sha, leaf, l, ok)
			}
		}
	}

	// The summary line, and the sources: each message was found in three places or more.
	code, out, errOut := runCLI(t, "import", mboxDir)
	if code != exitOK || out != fmt.Sprintf("import: %d files, %d messages, 0 new, %d already archived, 0 refused\n",
		countFiles(t, mboxDir), len(set), len(set)) {
		t.Errorf("exit %d, %q; stderr %s", code, out, errOut)
	}
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	loc, cleanup, err := s.openLocal(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	sha := sha256.Sum256(set[3].raw)
	r, err := loc.Reader.Get(context.Background(), sha)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, src := range r.Sources {
		paths = append(paths, src.Path)
	}
	slices.Sort(paths)
	wantPaths := []string{filepath.Join(emlDir, "sub", "folder", "003-"+set[3].name+".eml"),
		filepath.Join(maildir, "cur", fmt.Sprintf("1764061200.M3P42.mx,S=%d:2,S", len(set[3].raw))),
		filepath.Join(mboxDir, "archive-0.mbox") + "#3", filepath.Join(mboxCRLF, "archive-0.mbox") + "#3"}
	slices.Sort(wantPaths)
	if !slices.Equal(paths, wantPaths) {
		t.Errorf("sources of %s:\n%q\nwant\n%q", set[3].name, paths, wantPaths)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// Hostile input: a truncated mbox and binary junk are archived (and flagged by the archive); an
// oversized message, an empty one, a symbolic link loop and a pipe are refused with their
// reasons; files that are not mail are skipped; nothing stops the import.
func TestImportHostileInput(t *testing.T) {
	serviceEnv(t)
	dir := t.TempDir()
	j := func(p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	g := pectest.AllKinds(29)
	mbox := "From a\r\n" + string(g[1].Bytes) + "\r\nFrom b\r\n" + string(g[2].Bytes)
	write(t, j("box", "truncated.mbox"), []byte(mbox[:len(mbox)-len(g[2].Bytes)/2]))
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7 + i/13)
	}
	write(t, j("junk.bin"), junk)
	write(t, j("box", "empty.eml"), nil)
	write(t, j("box", "notes.txt"), []byte("not mail\n"))
	big := j("box", "big.eml")
	write(t, big, []byte("Subject: big\r\n\r\n"))
	if err := os.Truncate(big, 65<<20); err != nil { // sparse: over the 64 MiB limit
		t.Fatal(err)
	}
	if err := os.Symlink(j("box"), j("box", "loop")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(j("box", "pipe.eml"), 0o644); err != nil {
		t.Fatal(err)
	}

	res, sum, errOut := importJSON(t, exitNotValid, j("junk.bin"), j("box"))
	// Files: junk.bin, truncated.mbox, empty.eml, big.eml. Messages: 1 + 2 + 1 + 1.
	wantSummary(t, sum, 4, 5, 3, 0, 4)
	if sum["skipped"] != float64(1) || sum["errors"] != float64(0) {
		t.Errorf("summary %v: want 1 skipped, 0 errors", sum)
	}
	byPath := map[string]map[string]any{}
	for _, r := range res {
		byPath[fmt.Sprintf("%s#%v", r["path"], r["index"])] = r
	}
	for key, want := range map[string]string{
		j("junk.bin") + "#0":              "kind=not-pec",
		j("box", "truncated.mbox") + "#0": "kind=accettazione",
		j("box", "truncated.mbox") + "#1": "kind=",
		j("box", "empty.eml") + "#0":      "empty message",
		j("box", "big.eml") + "#0":        "message over the size limit (68157440 bytes, limit 67108864)",
		j("box", "loop") + "#0":           "symbolic link loop",
		j("box", "pipe.eml") + "#0":       "not a regular file",
	} {
		r := byPath[key]
		switch {
		case r == nil:
			t.Errorf("%s: no result", key)
		case strings.HasPrefix(want, "kind="):
			if r["error"] != "" || r["new"] != true || (want != "kind=" && r["kind"] != strings.TrimPrefix(want, "kind=")) {
				t.Errorf("%s: %v, want archived with %s", key, r, want)
			}
		case !strings.Contains(r["error"].(string), want) || !strings.Contains(r["error"].(string), key[:strings.LastIndex(key, "#")]):
			t.Errorf("%s: error %q, want %q naming the path", key, r["error"], want)
		}
	}
	if r := byPath[j("box", "truncated.mbox")+"#1"]; r != nil && r["valid"] != false {
		t.Errorf("the truncated message: %v, want an invalid signature", r)
	}
	if r := byPath[j("box", "big.eml")+"#0"]; r != nil && len(r["sha256"].(string)) != 64 {
		t.Errorf("the large message's SHA-256: %v", r["sha256"])
	}
	if !strings.Contains(errOut, "skipped: mailfile: "+j("box", "notes.txt")+": not a mail file") {
		t.Errorf("stderr does not name the skipped file:\n%s", errOut)
	}

	// A path that does not exist is an I/O error: exit 2, and the rest is still imported.
	code, out, errOut := runCLI(t, "import", j("missing.eml"), j("junk.bin"))
	if code != exitUsage || out != "import: 1 files, 1 messages, 0 new, 1 already archived, 0 refused\n" ||
		!strings.Contains(errOut, "missing.eml") {
		t.Errorf("a missing path: exit %d, %q, stderr %s", code, out, errOut)
	}
	if code, _, _ := runCLI(t, "import"); code != exitUsage {
		t.Errorf("no path: exit %d, want 2", code)
	}
}

// Import through a running archive service over gRPC, which takes its trust anchors from
// PECARCHIVE_TRUST: the test provider's messages come back trusted.
func TestImportOverGRPC(t *testing.T) {
	serviceEnv(t)
	set := importSet(t)[:10]
	ca, err := pectest.NewCA(importSeed, nil) // the CA of importSet's messages
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "ca.pem")
	write(t, root, ca.RootPEM())
	dir := t.TempDir()
	writeEMLFolder(t, dir, set)

	tokenFile := ingestToken(t, "importer")
	t.Setenv("PECARCHIVE_TRUST", root)
	addr := startArchiveService(t)
	t.Setenv("PECARCHIVE_TRUST", "") // the client has no say in what the archive trusts
	t.Setenv("PECARCHIVE_ARCHIVE_ADDR", addr)
	t.Setenv("PECARCHIVE_PG_SCHEMA", "import_over_grpc_must_not_be_opened")

	// Without a token the archive refuses the client: an error, not a refusal of the messages.
	res, sum, errOut := importJSON(t, exitUsage, dir)
	if sum["new"] != float64(0) || !strings.Contains(errOut, "Unauthenticated") {
		t.Errorf("without a token: %v, %v\n%s", res, sum, errOut)
	}
	t.Setenv("PECARCHIVE_ARCHIVE_TOKEN_FILE", tokenFile)
	res, sum, _ = importJSON(t, exitOK, dir)
	wantSummary(t, sum, len(set), len(set), len(set), 0, 0)
	for _, r := range res {
		name := filepath.Base(r["path"].(string))
		trusted := !strings.Contains(name, "original") && !strings.Contains(name, "signer") && !strings.Contains(name, "tampered")
		if r["trusted"] != trusted || r["new"] != true {
			t.Errorf("%s: %v, want trusted %v", name, r, trusted)
		}
	}
	res, sum, _ = importJSON(t, exitOK, dir)
	wantSummary(t, sum, len(set), len(set), 0, len(set), 0)
}

// ingestToken makes a bearer token of the ingest role alone for a client called name, names it
// in the credentials file of the archive services the test starts, and returns the file the
// client reads it from.
func ingestToken(t *testing.T, name string) (tokenFile string) {
	t.Helper()
	token, hash, err := auth.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	credFile := filepath.Join(t.TempDir(), "credentials")
	write(t, credFile, []byte("token "+hash+" "+name+" ingest\n"))
	tokenFile = filepath.Join(t.TempDir(), "token")
	write(t, tokenFile, []byte(token+"\n"))
	t.Setenv("PECARCHIVE_CREDENTIALS_FILE", credFile)
	return tokenFile
}

// startArchiveService runs the archive service on a free loopback port until the test ends and
// returns its address once it answers.
func startArchiveService(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveArchive(ctx, s, addr, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("archive service: %v", err)
		}
	})
	conn, client, err := archiveclient.Dial(addr, archiveclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := client.GetRecord(context.Background(), &archivev1.GetRecordRequest{Sha256: make([]byte, 32)})
		if c := status.Code(err); c != codes.Unavailable {
			return addr // it answers (refusing an unauthenticated call)
		}
		select {
		case err := <-done:
			t.Fatalf("archive service stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive service not answering at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
