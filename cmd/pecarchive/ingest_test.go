package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// pecarchiveBinary builds the command once per test binary (the crash test kills real processes).
func pecarchiveBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pecarchive-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "pecarchive")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// ingestEnv prepares the archive's settings (fresh schema, data folder, log key), a Dovecot user
// and a mailbox file naming it; it returns the user's client and the mailbox file's path.
func ingestEnv(t *testing.T, d *testenv.Dovecot, user string, mailboxes int) (*client.Client, string) {
	t.Helper()
	serviceEnv(t)
	d.AddUser(t, user, "pw-"+user, "")
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("pw-"+user+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("mailboxes:\n")
	for i := range mailboxes {
		fmt.Fprintf(&b, "  - name: mb%d\n    host: 127.0.0.1\n    port: %d\n    tls: implicit\n    ca_file: %s\n    username: %s\n    password_file: %s\n",
			i, d.TLSPort, d.CAFile, user, pass)
	}
	file := filepath.Join(dir, "mailboxes.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PECARCHIVE_MAILBOXES_FILE", file)
	return d.Client(t, user, "pw-"+user), file
}

// appendAll appends msgs to folder (created when missing) over a few connections at once.
func appendAll(t *testing.T, d *testenv.Dovecot, user, folder string, msgs [][]byte) {
	t.Helper()
	c := d.Client(t, user, "pw-"+user)
	if folder != "INBOX" {
		c.Create(folder)
	}
	const conns = 4
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for k := range conns {
		cc := c
		if k > 0 {
			cc = d.Client(t, user, "pw-"+user)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < len(msgs); i += conns {
				if err := cc.Append(folder, nil, time.Now().Add(-time.Hour), bytes.NewBuffer(msgs[i])); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("append: %v", err)
	}
}

// folderSums returns the SHA-256 of every message of folder as the server returns it (Dovecot
// turns bare LF into CRLF).
func folderSums(t *testing.T, c *client.Client, folder string) map[[32]byte]bool {
	t.Helper()
	st, err := c.Select(folder, true)
	if err != nil {
		t.Fatal(err)
	}
	out := map[[32]byte]bool{}
	if st.Messages == 0 {
		return out
	}
	set := new(imap.SeqSet)
	set.AddRange(1, st.Messages)
	sec := &imap.BodySectionName{Peek: true}
	ch := make(chan *imap.Message, 16)
	done := make(chan error, 1)
	go func() { done <- c.Fetch(set, []imap.FetchItem{sec.FetchItem()}, ch) }()
	for m := range ch {
		var buf bytes.Buffer
		buf.ReadFrom(m.GetBody(sec))
		out[sha256.Sum256(buf.Bytes())] = true
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return out
}

// archiveCounts checks the archive holds every sum exactly once, with one leaf each, and that the
// log has exactly one leaf per catalogued message.
func archiveCounts(t *testing.T, want map[[32]byte]bool) {
	t.Helper()
	ctx := context.Background()
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := s.openPool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var msgs, leaves, distinctLeaves, sourceLeaves int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT leaf_index) FROM messages`).Scan(&msgs, &distinctLeaves); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM merklelog_leaf`).Scan(&leaves); err != nil {
		t.Fatal(err)
	}
	// A message's further sources have leaves of their own (here the postacert.eml that several
	// complete delivery receipts carry).
	if err := pool.QueryRow(ctx, `SELECT count(leaf_index) FROM message_sources`).Scan(&sourceLeaves); err != nil {
		t.Fatal(err)
	}
	if msgs+sourceLeaves != leaves || distinctLeaves != msgs {
		t.Errorf("catalog holds %d messages with %d distinct leaves and %d sources with leaves; the log holds %d leaves",
			msgs, distinctLeaves, sourceLeaves, leaves)
	}
	sums := make([][]byte, 0, len(want))
	for s := range want {
		sums = append(sums, s[:])
	}
	var found, leafRows int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(leaf_index) FROM messages WHERE sha256 = ANY($1)`, sums).Scan(&found, &leafRows); err != nil {
		t.Fatal(err)
	}
	if found != len(want) || leafRows != len(want) {
		t.Errorf("archive holds %d of the %d messages (%d with a leaf)", found, len(want), leafRows)
	}
}

var summaryRE = regexp.MustCompile(`^ingest: (\S+)/(\S+) fetched (\d+), new (\d+), already (\d+), refused (\d+), cursor (\d+)/(\d+)$`)

// TestIngestDovecot runs `pecarchive ingest` against a real Dovecot with the real archive
// (in-process, on the test PostgreSQL and write-once files).
func TestIngestDovecot(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	d := testenv.StartDovecot(t)
	bin := pecarchiveBinary(t)
	t.Run("ExactlyOnceUnderSIGKILL", func(t *testing.T) { testExactlyOnceUnderKill(t, d, bin) })
	t.Run("LargeMessage", func(t *testing.T) { testLargeMessage(t, d, bin) })
	t.Run("AfterArchiveBlobMissing", func(t *testing.T) { testBlobMissing(t, d, bin, false) })
	t.Run("AfterArchiveBlobMissingRemote", func(t *testing.T) { testBlobMissing(t, d, bin, true) })
	t.Run("ExitStatus", func(t *testing.T) { testIngestExit(t, d) })
}

// testExactlyOnceUnderKill kills `pecarchive ingest --once` with SIGKILL at random moments at
// least 20 times while it pulls 2,000 messages from two folders, restarting it each time; at the
// end the archive holds every message exactly once (one leaf each) and every cursor is at the
// end of its folder.
func testExactlyOnceUnderKill(t *testing.T, d *testenv.Dovecot, bin string) {
	c, _ := ingestEnv(t, d, "crash", 1)
	msgs, err := benchMessages(2000, 40)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, d, "crash", "INBOX", msgs[:1000])
	appendAll(t, d, "crash", "Ricevute", msgs[1000:])
	want := folderSums(t, c, "INBOX")
	for s := range folderSums(t, c, "Ricevute") {
		want[s] = true
	}
	if len(want) != 2000 {
		t.Fatalf("%d distinct messages in the mailbox", len(want))
	}
	env := append(os.Environ(), "PECARCHIVE_INGEST_REPLICA=crash-test", "PECARCHIVE_INGEST_LEASE=10s",
		"PECARCHIVE_INGEST_CONCURRENCY=4")
	if code, _, errOut := runCLI(t, "migrate"); code != exitOK {
		t.Fatalf("migrate: %s", errOut)
	}
	pool := testPool(t)
	stored := func() int {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM messages`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills, runs := 0, 0
	var lastErr bytes.Buffer
	// Each run is killed at a random moment after it archived its first message (so while it
	// pulls), until 20 kills happened; then one run pulls to the end.
	for kills < 20 {
		if runs++; runs > 80 {
			t.Fatalf("only %d kills while pulling in %d runs", kills, runs)
		}
		before := stored()
		cmd := exec.Command(bin, "ingest", "--once")
		cmd.Env = env
		lastErr.Reset()
		cmd.Stderr = &lastErr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		var kill <-chan time.Time
		poll := time.NewTicker(10 * time.Millisecond)
	wait:
		for {
			select {
			case err := <-exited:
				poll.Stop()
				if err != nil {
					t.Fatalf("ingest exited before the kill: %v\n%s", err, lastErr.String())
				}
				t.Fatalf("ingest pulled everything before its kill, after %d kills", kills)
			case <-poll.C:
				if kill == nil && stored() > before {
					kill = time.After(time.Duration(rng.IntN(250)) * time.Millisecond)
				}
			case <-kill:
				break wait
			}
		}
		poll.Stop()
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		kills++
	}
	t.Logf("%d kills over %d runs; %d messages archived when the last one was killed", kills, runs, stored())
	out, errOut := runIngestBin(t, bin, env)
	lines := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := summaryRE.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("summary line %q", sc.Text())
		}
		lines[m[2]] = m
	}
	for _, f := range []string{"INBOX", "Ricevute"} {
		m := lines[f]
		if m == nil || m[8] != "1000" || m[6] != "0" {
			t.Errorf("%s: %v (stderr %s)", f, m, errOut)
		}
	}
	archiveCounts(t, want)
}

// testPool opens a pool on the settings' schema, closed on cleanup.
func testPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := s.openPool(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// runIngestBin runs `pecarchive ingest --once` to its end and returns its output.
func runIngestBin(t *testing.T, bin string, env []string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "ingest", "--once")
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("ingest --once: %v\n%s", err, errOut.String())
	}
	return out.String(), errOut.String()
}

// testLargeMessage archives a 50 MB message through IMAP and the in-process archive (its peak
// RSS is measured by `pecarchive bench ingest`: a child's rusage counts the parent's pages it
// was forked with).
func testLargeMessage(t *testing.T, d *testenv.Dovecot, bin string) {
	c, _ := ingestEnv(t, d, "large", 1)
	big := largeBenchMessage(50 << 20)
	appendAll(t, d, "large", "INBOX", [][]byte{big})
	want := folderSums(t, c, "INBOX")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "ingest", "--once")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("ingest --once: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "ingest: mb0/INBOX fetched 1, new 1, already 0, refused 0, cursor ") {
		t.Fatalf("summary %q %s", out.String(), errOut.String())
	}
	archiveCounts(t, want)
}

// testBlobMissing archives five messages, loses the blob of one, then runs with expunge:0: the
// four the archive holds leave the mailbox, the one whose blob is missing stays. remote: ingest
// reaches a running archive service over gRPC with a token of the ingest role alone, and the
// service's GetRecord (verify_blob) is what finds the blob missing.
func testBlobMissing(t *testing.T, d *testenv.Dovecot, bin string, remote bool) {
	user := "policy"
	if remote {
		user = "policy-remote"
	}
	c, file := ingestEnv(t, d, user, 1)
	msgs, err := benchMessages(5, 5)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, d, user, "INBOX", msgs)
	sums := folderSums(t, c, "INBOX")
	env := os.Environ()
	if remote {
		tokenFile := ingestToken(t, "ingester")
		env = append(os.Environ(), "PECARCHIVE_ARCHIVE_ADDR="+startArchiveService(t), "PECARCHIVE_ARCHIVE_TOKEN_FILE="+tokenFile)
	}
	runIngestBin(t, bin, env)
	var lost [32]byte
	for s := range sums {
		lost = s
		break
	}
	hexSum := fmt.Sprintf("%x", lost)
	p := filepath.Join(os.Getenv("PECARCHIVE_DATA_DIR"), "blobs", "sha256", hexSum[:2], hexSum)
	if err := os.Remove(p); err != nil {
		t.Fatalf("removing the blob: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, append(b, "    after_archive: expunge:0\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut := runIngestBin(t, bin, env)
	left := folderSums(t, c, "INBOX")
	if len(left) != 1 || !left[lost] {
		t.Fatalf("%d messages left in INBOX, want only the one whose blob is missing\n%s", len(left), errOut)
	}
	if !strings.Contains(errOut, "blob is missing") {
		t.Errorf("no warning naming the missing blob:\n%s", errOut)
	}
}

// testIngestExit: a mailbox that fails makes `ingest --once` exit 1 naming it and the reason on
// standard error, while the other mailbox's summary line is printed; no mailbox file is a usage
// error (exit 2).
func testIngestExit(t *testing.T, d *testenv.Dovecot) {
	_, file := ingestEnv(t, d, "exit", 2)
	appendAll(t, d, "exit", "INBOX", smallMessages(3))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// The second mailbox gets a wrong password.
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("nope\n"), 0o600)
	doc := string(b)
	i := strings.LastIndex(doc, "password_file: ")
	doc = doc[:i] + "password_file: " + wrong + "\n"
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "ingest", "--once")
	if code != exitNotValid || !strings.Contains(out, "ingest: mb0/INBOX fetched 3, new 3") ||
		!strings.Contains(errOut, "ingest: mailbox mb1:") || !strings.Contains(errOut, "authentication failed") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Setenv("PECARCHIVE_MAILBOXES_FILE", "")
	if code, _, errOut := runCLI(t, "ingest", "--once"); code != exitUsage || !strings.Contains(errOut, "PECARCHIVE_MAILBOXES_FILE") {
		t.Fatalf("without a mailbox file: exit %d %s", code, errOut)
	}
}

// smallMessages returns n small distinct messages.
func smallMessages(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("From: a@pec.esempio.it\r\nSubject: %d\r\nMessage-ID: <m%d@pec.esempio.it>\r\n\r\ntesto %d\r\n", i, i, i))
	}
	return out
}

// TestIngestReportsDeadLetters: a message the archive refuses (over its size limit of 64 MiB,
// under ingest's own) is named on standard error by `ingest --once`, with its SHA-256 and the
// archive's reason; the folder goes on (exit 0, the cursor at its end).
func TestIngestReportsDeadLetters(t *testing.T) {
	serviceEnv(t)
	mem, err := startMemoryIMAP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mem.stop)
	big := largeBenchMessage(archive.DefaultMaxSize + 1<<20)
	for _, m := range [][]byte{[]byte("Subject: uno\r\n\r\nuno\r\n"), big, []byte("Subject: tre\r\n\r\ntre\r\n")} {
		if err := mem.inbox.CreateMessage(nil, time.Now(), bytes.NewReader(m)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass")
	write(t, pass, []byte(memoryIMAPPassword+"\n"))
	file := filepath.Join(dir, "mailboxes.yaml")
	write(t, file, []byte(fmt.Sprintf("mailboxes:\n  - {name: mem, host: 127.0.0.1, port: %s, tls: none, username: %s, password_file: %s}\n",
		mem.addr[strings.LastIndexByte(mem.addr, ':')+1:], memoryIMAPUser, pass)))
	t.Setenv("PECARCHIVE_MAILBOXES_FILE", file)
	code, out, errOut := runCLI(t, "ingest", "--once")
	if code != exitOK || !strings.Contains(out, "ingest: mem/INBOX fetched 3, new 2, already 0, refused 1, cursor 1/3\n") ||
		!strings.Contains(errOut, fmt.Sprintf("ingest: mem/INBOX UID 1/2 refused by the archive (sha256 %x, %d bytes): ", sha256.Sum256(big), len(big))) {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
