package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-imap/client"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/services/ingest"
)

func init() {
	benchmarks["ingest"] = benchIngest
}

// benchIngest loads N generated messages into a throw-away Dovecot and measures, in one run:
// IMAP -> acknowledged archive end to end (pecarchive's ingest with the archive in-process),
// and the two halves alone: fetching the same messages from the same Dovecot with the same
// connections and no archiving, and storing the same bytes through the archive's Store with no
// IMAP. The floor is the slower half. It then passes a 50 MB message through ingest and the
// archive and prints the peak RSS meanwhile. Last line: "ratio: X.XX" (end to end / floor).
func benchIngest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 10000, "messages to load and pull")
	mailboxes := fs.Int("mailboxes", 2, "mailboxes the messages are spread over (one IMAP connection each)")
	folders := fs.Int("folders", 2, "folders per mailbox")
	conc := fs.Int("concurrency", ingest.DefaultConcurrency, "Store calls in flight per mailbox")
	largeMB := fs.Int("large", 50, "size in MB of the large message whose peak RSS is measured (0: skip)")
	keep := fs.Bool("keep", false, "keep the PostgreSQL schemas and the Dovecot folder")
	rounds := fs.Int("rounds", 3, "rounds, each on its own folders: the fetch half, then the store half and end to end in turns")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *n <= 0 || *mailboxes <= 0 || *folders <= 0 || *conc <= 0 || *largeMB < 0 || *rounds <= 0 || *n < *rounds**mailboxes**folders {
		fmt.Fprintln(stderr, "pecarchive bench ingest: -n, -mailboxes, -folders, -rounds and -concurrency must be positive, -n at least one message per folder")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := ingestBenchConfig{N: *n, Mailboxes: *mailboxes, Folders: *folders, Concurrency: *conc, LargeMB: *largeMB, Keep: *keep, Rounds: *rounds}
	if err := runIngestBench(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "pecarchive bench ingest: %v\n", err)
		return exitNotValid
	}
	return exitOK
}

type ingestBenchConfig struct {
	N, Mailboxes, Folders, Concurrency, LargeMB, Rounds int
	Keep                                                bool
}

// dovecotServer is a throw-away Dovecot started with scripts/dovecot.sh.
type dovecotServer struct {
	script, dir   string
	port, tlsPort int
	ca            string
	keep          bool
}

// startDovecot starts a Dovecot on free loopback ports in a new temporary folder (installing it
// with apt-get where it is missing, through the script).
func startDovecot(keep bool) (*dovecotServer, error) {
	script, err := findScript("dovecot.sh")
	if err != nil {
		return nil, fmt.Errorf("scripts/dovecot.sh not found: run from the repository")
	}
	dir, err := os.MkdirTemp("", "pecarchive-dovecot-")
	if err != nil {
		return nil, err
	}
	ports := make([]int, 2)
	for i := range ports {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = lis.Addr().(*net.TCPAddr).Port
		lis.Close()
	}
	cmd := exec.Command(script, "start", dir, strconv.Itoa(ports[0]), strconv.Itoa(ports[1]))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", script, err)
	}
	d := &dovecotServer{script: script, dir: dir, port: ports[0], tlsPort: ports[1], keep: keep}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == "IMAP_CA_FILE" {
			d.ca = v
		}
	}
	return d, nil
}

func (d *dovecotServer) stop() {
	exec.Command(d.script, "stop", d.dir).Run()
	if !d.keep {
		os.RemoveAll(d.dir)
	}
}

func (d *dovecotServer) addUser(name, pass string) error {
	if out, err := exec.Command(d.script, "user", d.dir, name, pass, "10G").CombinedOutput(); err != nil {
		return fmt.Errorf("dovecot user: %v: %s", err, out)
	}
	return nil
}

// client logs in as user over implicit TLS.
func (d *dovecotServer) client(user, pass string) (*client.Client, error) {
	pem, err := os.ReadFile(d.ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c, err := client.DialTLS(net.JoinHostPort("127.0.0.1", strconv.Itoa(d.tlsPort)), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, pass); err != nil {
		c.Logout()
		return nil, err
	}
	return c, nil
}

// mailbox returns the mailbox-file entry for user, with the password file passFile.
func (d *dovecotServer) mailbox(name, user, passFile string) (ingest.Mailbox, error) {
	doc := fmt.Sprintf("mailboxes:\n  - {name: %s, host: 127.0.0.1, port: %d, tls: implicit, ca_file: %q, username: %s, password_file: %q}\n",
		name, d.tlsPort, d.ca, user, passFile)
	ms, err := ingest.ParseMailboxes([]byte(doc))
	if err != nil {
		return ingest.Mailbox{}, err
	}
	return ms[0], nil
}

// fill appends msgs to folder over conns connections at once.
func (d *dovecotServer) fill(user, pass, folder string, msgs [][]byte, conns int) error {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for k := range conns {
		c, err := d.client(user, pass)
		if err != nil {
			return err
		}
		if k == 0 && folder != "INBOX" {
			c.Create(folder)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Logout()
			for i := k; i < len(msgs); i += conns {
				if err := c.Append(folder, nil, time.Now().Add(-time.Hour), bytes.NewBuffer(msgs[i])); err != nil {
					errs <- err
					return
				}
			}
		}()
		if k == 0 {
			wg.Wait() // the folder exists before the others append
		}
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// captureArchiver acknowledges every message at once and keeps its bytes: the fetch half.
type captureArchiver struct {
	mu   sync.Mutex
	msgs [][]byte
	n    atomic.Int64
}

func (c *captureArchiver) Store(ctx context.Context, raw []byte, src ingest.Source) (ingest.Stored, error) {
	c.mu.Lock()
	c.msgs = append(c.msgs, raw)
	c.mu.Unlock()
	c.n.Add(1)
	return ingest.Stored{Size: int64(len(raw)), New: true}, nil
}

func (c *captureArchiver) Lookup(ctx context.Context, sum [32]byte) (ingest.Stored, error) {
	return ingest.Stored{}, ingest.ErrNotArchived
}

func runIngestBench(ctx context.Context, cfg ingestBenchConfig, out io.Writer) error {
	base, err := loadSettings("")
	if err != nil {
		return err
	}
	if base.get("PECARCHIVE_PG_DSN", "") == "" {
		base["PECARCHIVE_PG_DSN"] = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	delete(base, "PECARCHIVE_S3_ENDPOINT")
	delete(base, "PECARCHIVE_ARCHIVE_ADDR")
	stamp := fmt.Sprintf("%d", time.Now().UnixNano())
	work, err := os.MkdirTemp("", "pecarchive-bench-ingest-")
	if err != nil {
		return err
	}
	defer func() {
		if !cfg.Keep {
			os.RemoveAll(work)
		}
	}()
	// One schema and data folder per side: the end-to-end archive and the store-only one each
	// start empty, so neither finds the other's messages already stored.
	side := func(name string) settings {
		s := settings{}
		for k, v := range base {
			s[k] = v
		}
		s["PECARCHIVE_PG_SCHEMA"] = "bench_ingest_" + stamp + "_" + name
		s["PECARCHIVE_DATA_DIR"] = filepath.Join(work, name)
		delete(s, "PECARCHIVE_LOG_KEY_FILE")
		delete(s, "PECARCHIVE_LOG_KEY")
		delete(s, "PECARCHIVE_BLOB_DIR")
		return s
	}
	var pools []*pgxpool.Pool
	openPool := func(s settings) (*pgxpool.Pool, error) {
		p, err := s.openPool(ctx)
		if err == nil {
			pools = append(pools, p)
		}
		return p, err
	}
	// Every side's schema is dropped through the first pool, after the archives of the other
	// sides (which open pools of their own) have closed: their defers run first.
	defer func() {
		if !cfg.Keep && len(pools) > 0 {
			for _, name := range []string{"state", "store", "e2e"} {
				schema := side(name)["PECARCHIVE_PG_SCHEMA"]
				if _, err := pools[0].Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
					fmt.Fprintf(out, "postgres: schema %s left behind: %v\n", schema, err)
				}
			}
		}
		for _, p := range pools {
			p.Close()
		}
	}()

	d, err := startDovecot(cfg.Keep)
	if err != nil {
		return err
	}
	defer d.stop()
	fmt.Fprintf(out, "dovecot: throw-away server on 127.0.0.1:%d (implicit TLS), folder %s\n", d.tlsPort, d.dir)
	passFile := filepath.Join(work, "pass")
	fmt.Fprintf(out, "machine: %d CPUs, load average %s\n", runtime.NumCPU(), loadAverage())
	if err := os.WriteFile(passFile, []byte("bench-password\n"), 0o600); err != nil {
		return err
	}

	t0 := time.Now()
	msgs, err := benchMessages(cfg.N, min(cfg.N, 200))
	if err != nil {
		return err
	}
	total := 0
	for _, m := range msgs {
		total += len(m)
	}
	fmt.Fprintf(out, "workload: %d messages (PEC receipts, mean %d bytes), generated in %s\n", len(msgs), total/len(msgs), time.Since(t0).Round(time.Millisecond))
	// Round r's messages are in folders R<r>F<f> of every mailbox: each round pulls its own.
	t0 = time.Now()
	var users []string
	slices := cfg.Rounds * cfg.Mailboxes * cfg.Folders
	for m := range cfg.Mailboxes {
		user := fmt.Sprintf("bench%d", m)
		users = append(users, user)
		if err := d.addUser(user, "bench-password"); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	var loadErr atomic.Value
	for m, user := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range cfg.Rounds {
				for f := range cfg.Folders {
					k := (r*cfg.Mailboxes+m)*cfg.Folders + f
					lo, hi := k*len(msgs)/slices, (k+1)*len(msgs)/slices
					if err := d.fill(user, "bench-password", fmt.Sprintf("R%dF%d", r, f), msgs[lo:hi], 2); err != nil {
						loadErr.Store(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := loadErr.Load().(error); err != nil {
		return fmt.Errorf("loading dovecot: %w", err)
	}
	fmt.Fprintf(out, "dovecot: loaded by IMAP APPEND into %d mailboxes x %d folders x %d rounds in %s\n", cfg.Mailboxes, cfg.Folders, cfg.Rounds, time.Since(t0).Round(time.Millisecond))
	msgs = nil

	statePool, err := openPool(side("state"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := &ingest.Options{Concurrency: cfg.Concurrency}
	pull := func(prefix string, r int, arc ingest.Archiver) (time.Duration, ingest.Report, error) {
		var mbs []ingest.Mailbox
		for i, u := range users {
			mb, err := d.mailbox(fmt.Sprintf("%s-r%d-m%d", prefix, r, i), u, passFile)
			if err != nil {
				return 0, ingest.Report{}, err
			}
			mb.Folders = []string{fmt.Sprintf("R%dF*", r)}
			mbs = append(mbs, mb)
		}
		svc, err := ingest.New(ctx, ingest.Config{Mailboxes: mbs, Archiver: arc, Pool: statePool, Logger: log, Options: opts})
		if err != nil {
			return 0, ingest.Report{}, err
		}
		t := time.Now()
		rep, err := svc.Once(ctx)
		el := time.Since(t)
		if err == nil && len(rep.Failed) > 0 {
			err = rep.Failed[0]
		}
		return el, rep, err
	}
	count := func(rep ingest.Report) (fetched, stored int) {
		for _, f := range rep.Folders {
			fetched += f.Fetched
			stored += f.New
		}
		return
	}
	storeArc, closeStore, err := side("store").openArchiver(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	e2eArc, closeE2E, err := side("e2e").openArchiver(ctx)
	if err != nil {
		return err
	}
	defer closeE2E()
	callers := cfg.Concurrency * cfg.Mailboxes
	var fetchTime, storeTime, e2eTime time.Duration
	var fetchN, storeN, e2eN int
	for r := range cfg.Rounds {
		// The fetch half first (it captures the bytes the store half stores), then the store
		// half and end to end, in turns, so that drift of the machine weighs on both alike.
		capture := &captureArchiver{}
		el, rep, err := pull("fetch", r, capture)
		if err != nil {
			return fmt.Errorf("round %d, fetch half: %w", r+1, err)
		}
		n, _ := count(rep)
		fetchTime, fetchN = fetchTime+el, fetchN+n
		storeHalf := func() error {
			stored := capture.msgs
			var next atomic.Int64
			var firstErr atomic.Value
			var wg sync.WaitGroup
			t := time.Now()
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1)) - 1
						if i >= len(stored) {
							return
						}
						if _, err := storeArc.Store(ctx, stored[i], ingest.Source{Path: fmt.Sprintf("bench/%d/%d.eml", r, i)}); err != nil {
							firstErr.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			storeTime += time.Since(t)
			storeN += len(stored)
			if err, _ := firstErr.Load().(error); err != nil {
				return fmt.Errorf("round %d, store half: %w", r+1, err)
			}
			return nil
		}
		e2e := func() error {
			el, rep, err := pull("e2e", r, e2eArc)
			if err != nil {
				return fmt.Errorf("round %d, end to end: %w", r+1, err)
			}
			f, s := count(rep)
			if f != n || s != n {
				return fmt.Errorf("round %d, end to end: fetched %d and stored %d new of %d", r+1, f, s, n)
			}
			e2eTime, e2eN = e2eTime+el, e2eN+n
			return nil
		}
		first, second := storeHalf, e2e
		if r%2 == 1 {
			first, second = e2e, storeHalf
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
	}
	if fetchN != cfg.N || storeN != cfg.N || e2eN != cfg.N {
		return fmt.Errorf("fetched %d, stored %d, end to end %d of %d", fetchN, storeN, e2eN, cfg.N)
	}
	fetchRate := float64(cfg.N) / fetchTime.Seconds()
	storeRate := float64(cfg.N) / storeTime.Seconds()
	e2eRate := float64(cfg.N) / e2eTime.Seconds()

	floorName, floorRate := "store only", storeRate
	if fetchRate < storeRate {
		floorName, floorRate = "fetch only", fetchRate
	}
	fmt.Fprintf(out, "fetch only: %.0f messages/s (ingest with an archive acknowledging at once: %d mailboxes x %d folders, two connections per mailbox; %s over %d rounds)\n",
		fetchRate, cfg.Mailboxes, cfg.Folders, fetchTime.Round(time.Millisecond), cfg.Rounds)
	fmt.Fprintf(out, "store only: %.0f messages/s (the same bytes through the in-process archive's Store, %d callers, write-once files + PostgreSQL; %s)\n",
		storeRate, callers, storeTime.Round(time.Millisecond))
	fmt.Fprintf(out, "end to end: %.0f messages/s (IMAP -> ingest -> archive Store acknowledged, cursors written; %s; target >= 500/s)\n",
		e2eRate, e2eTime.Round(time.Millisecond))
	fmt.Fprintf(out, "floor: %.0f messages/s (the slower half: %s)\n", floorRate, floorName)

	if cfg.LargeMB > 0 {
		peak, err := largePeak(ctx, d, cfg.LargeMB, passFile, statePool, e2eArc, log)
		if err != nil {
			return fmt.Errorf("large message: %w", err)
		}
		fmt.Fprintf(out, "peak RSS while a %d MB message passes (IMAP -> ingest -> in-process archive, one process): %d MB (target < 200 MB)\n", cfg.LargeMB, peak>>20)
	}
	fmt.Fprintf(out, "machine: load average %s at the end\n", loadAverage())
	fmt.Fprintf(out, "ratio: %.2f\n", e2eRate/floorRate)
	return nil
}

// largePeak appends a message of mb megabytes to a mailbox of its own, then pulls it through
// ingest into arc and returns the process's peak RSS meanwhile (VmHWM, reset first).
func largePeak(ctx context.Context, d *dovecotServer, mb int, passFile string, pool *pgxpool.Pool, arc ingest.Archiver, log *slog.Logger) (int64, error) {
	if err := d.addUser("large", "bench-password"); err != nil {
		return 0, err
	}
	big := largeBenchMessage(mb << 20)
	if err := d.fill("large", "bench-password", "INBOX", [][]byte{big}, 1); err != nil {
		return 0, err
	}
	big = nil
	m, err := d.mailbox("large", "large", passFile)
	if err != nil {
		return 0, err
	}
	svc, err := ingest.New(ctx, ingest.Config{Mailboxes: []ingest.Mailbox{m}, Archiver: arc, Pool: pool, Logger: log})
	if err != nil {
		return 0, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, fmt.Errorf("resetting the peak RSS: %w", err)
	}
	rep, err := svc.Once(ctx)
	if err == nil && len(rep.Failed) > 0 {
		err = rep.Failed[0]
	}
	if err != nil {
		return 0, err
	}
	if len(rep.Folders) != 1 || rep.Folders[0].New != 1 {
		return 0, fmt.Errorf("the large message was not stored: %+v", rep.Folders)
	}
	return vmHWM()
}

// vmHWM returns the process's peak resident set size.
func vmHWM() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// largeBenchMessage returns a MIME message of about size bytes with a base64 attachment.
func largeBenchMessage(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 1024)
	b.WriteString("From: mittente@pec.esempio.it\r\nTo: protocollo@pec.ordine.example.it\r\nSubject: allegato grande\r\n" +
		"Date: Wed, 25 Nov 2026 10:00:00 +0100\r\nMessage-ID: <large@pec.esempio.it>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nIn allegato.\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"grande.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	x := uint64(0x9e3779b97f4a7c15)
	line := make([]byte, 76)
	for b.Len() < size-100 {
		for i := range line {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			line[i] = alphabet[x&63]
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

// loadAverage returns the first three fields of /proc/loadavg, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
