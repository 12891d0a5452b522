package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/procstat"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

func init() {
	benchmarks["archive"] = benchArchive
}

// benchArchive stores N generated receipts through the gRPC Store into S3 + PostgreSQL and, in the
// same run against the same server with the same concurrency, measures the floor: plain PUTs of
// the same objects with the same checksum and retention headers. Its last line is
// "ratio: X.XX" (pipeline rate / floor rate).
func benchArchive(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 20000, "receipts to store")
	conc := fs.Int("concurrency", 32, "concurrent Store calls (and concurrent PUTs for the floor)")
	unique := fs.Int("unique", 0, "distinct signed receipts to generate (0: all N distinct); fewer are stored several times with distinct Received headers")
	endpoint := fs.String("s3-endpoint", "", "S3 endpoint host:port (keys from $PECARCHIVE_S3_ACCESS_KEY / $PECARCHIVE_S3_SECRET_KEY); default: start a throw-away versitygw with scripts/s3-server.sh")
	server := fs.String("s3-server", "versitygw", "throw-away server to start when no endpoint is given: versitygw or minio")
	retention := fs.Duration("retention", 24*time.Hour, "COMPLIANCE retention of the benchmark's objects (kept short: they cannot be deleted before it ends)")
	proofs := fs.Int("proofs", 2000, "inclusion proofs to time at the final tree size")
	keep := fs.Bool("keep", false, "keep the PostgreSQL schema and the S3 server's data")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the pipeline phase to this file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *unique == 0 {
		*unique = *n
	}
	if *n <= 0 || *conc <= 0 || *unique <= 0 {
		fmt.Fprintln(stderr, "pecarchive bench archive: -n and -concurrency must be positive, -unique not negative")
		return exitUsage
	}
	if err := runArchiveBench(context.Background(), archiveBenchConfig{
		N: *n, Concurrency: *conc, Unique: *unique, Endpoint: *endpoint, Server: *server,
		Retention: *retention, Proofs: *proofs, Keep: *keep, CPUProfile: *cpuprofile,
	}, stdout); err != nil {
		fmt.Fprintf(stderr, "pecarchive bench archive: %v\n", err)
		return exitNotValid
	}
	return exitOK
}

type archiveBenchConfig struct {
	N, Concurrency, Unique int
	Endpoint, Server       string
	AccessKey, SecretKey   string
	Retention              time.Duration
	Proofs                 int
	Keep                   bool
	PGDSN                  string
	CPUProfile             string
	serverPID              int
}

func runArchiveBench(ctx context.Context, cfg archiveBenchConfig, out io.Writer) error {
	s, err := loadSettings("")
	if err != nil {
		return err
	}
	if cfg.Endpoint == "" {
		srv, err := startS3Server(cfg.Server, cfg.Keep)
		if err != nil {
			return err
		}
		defer srv.stop()
		cfg.Endpoint, cfg.AccessKey, cfg.SecretKey, cfg.serverPID = srv.endpoint, srv.access, srv.secret, srv.pid
		fmt.Fprintf(out, "s3: throw-away %s at %s (data in %s)\n", cfg.Server, srv.endpoint, srv.dir)
	} else {
		cfg.AccessKey, cfg.SecretKey = s.get("PECARCHIVE_S3_ACCESS_KEY", ""), s.get("PECARCHIVE_S3_SECRET_KEY", "")
		fmt.Fprintf(out, "s3: %s\n", cfg.Endpoint)
	}
	stamp := fmt.Sprintf("%d", time.Now().UnixNano())
	schema := "bench_" + stamp
	s["PECARCHIVE_PG_SCHEMA"] = schema
	if cfg.PGDSN != "" {
		s["PECARCHIVE_PG_DSN"] = cfg.PGDSN
	} else if s.get("PECARCHIVE_PG_DSN", "") == "" {
		s["PECARCHIVE_PG_DSN"] = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	pool, err := s.openPool(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if !cfg.Keep {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		}
		pool.Close()
	}()
	fmt.Fprintf(out, "postgres: schema %s\n", schema)

	// The workload: distinct signed receipts of 8-12 KB, each copy made unique by a Received
	// header outside the signed entity (as each delivery to a mailbox adds one).
	t0 := time.Now()
	msgs, err := benchMessages(cfg.N, cfg.Unique)
	if err != nil {
		return err
	}
	minSize, maxSize, total := len(msgs[0]), 0, 0
	for _, m := range msgs {
		minSize, maxSize, total = min(minSize, len(m)), max(maxSize, len(m)), total+len(m)
	}
	fmt.Fprintf(out, "workload: %d receipts (%d distinct signed ones), %d-%d bytes, mean %d, generated in %s\n",
		len(msgs), cfg.Unique, minSize, maxSize, total/len(msgs), time.Since(t0).Round(time.Millisecond))

	// Floor: plain PUTs of the same objects, same headers, same concurrency, each run in a bucket
	// of its own. It is measured before and after the pipeline and averaged, so that drift of the
	// server or the machine during the run weighs on both sides alike.
	cpu0, self0, pg0 := procCPU(cfg.serverPID), procCPU(os.Getpid()), pgCPU()
	floorBefore, err := benchFloor(ctx, cfg, "bench-floor-a-"+stamp, msgs)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	fmt.Fprintf(out, "floor (before the pipeline): %.0f PUTs/s (%d objects, concurrency %d, SHA-256 checksum + COMPLIANCE retention, conditional)\n",
		floorBefore, len(msgs), cfg.Concurrency)
	cpu1, self1, pg1 := procCPU(cfg.serverPID), procCPU(os.Getpid()), pgCPU()

	// Pipeline: gRPC Store -> archive (parse, verify, S3 put, PostgreSQL catalog + log leaf).
	rate, l, err := benchPipeline(ctx, cfg, s, pool, "bench-archive-"+stamp, msgs, out)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	fmt.Fprintf(out, "pipeline: %.0f receipts/s through gRPC Store into S3 + PostgreSQL (concurrency %d; target ≥1000/s)\n", rate, cfg.Concurrency)
	cpu2, self2, pg2 := procCPU(cfg.serverPID), procCPU(os.Getpid()), pgCPU()
	if cfg.serverPID > 0 {
		per := func(d time.Duration) string { return (d / time.Duration(len(msgs))).Round(time.Microsecond).String() }
		fmt.Fprintf(out, "cpu per message: floor: S3 server %s, client %s, PostgreSQL %s; pipeline: S3 server %s, pecarchive %s, PostgreSQL %s (all postgres processes of this machine)\n",
			per(cpu1-cpu0), per(self1-self0), per(pg1-pg0), per(cpu2-cpu1), per(self2-self1), per(pg2-pg1))
	}

	floorAfter, err := benchFloor(ctx, cfg, "bench-floor-b-"+stamp, msgs)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	floorRate := (floorBefore + floorAfter) / 2
	fmt.Fprintf(out, "floor (after the pipeline): %.0f PUTs/s; mean floor %.0f PUTs/s\n", floorAfter, floorRate)

	if cfg.Proofs > 0 {
		p50, p99, size, err := benchProofs(ctx, l, cfg.Proofs)
		if err != nil {
			return fmt.Errorf("proofs: %w", err)
		}
		fmt.Fprintf(out, "inclusion proofs at tree size %d: p50 %s, p99 %s over %d proofs (target p99 < 5ms)\n",
			size, p50.Round(time.Microsecond), p99.Round(time.Microsecond), cfg.Proofs)
	}
	fmt.Fprintf(out, "ratio: %.2f\n", rate/floorRate)
	return nil
}

// benchMessages returns n receipts built from `unique` distinct signed ones.
func benchMessages(n, unique int) ([][]byte, error) {
	unique = min(unique, n)
	p, err := pectest.NewProvider(7, nil)
	if err != nil {
		return nil, err
	}
	peer, err := p.Peer(nil)
	if err != nil {
		return nil, err
	}
	base := make([][]byte, unique)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range base {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			o, err := p.Original(&pectest.Original{
				Subject: fmt.Sprintf("Convocazione assemblea n. %d", i),
				Attachments: []pectest.Attachment{{Name: "convocazione.pdf", ContentType: "application/pdf",
					Data: p.FileData(16+i%256, fmt.Sprint("bench", i))}},
			})
			if err != nil {
				firstErr.Store(err)
				return
			}
			var g *pectest.Generated
			switch i % 4 {
			case 0:
				g, err = p.Acceptance(pectest.Params{Original: o})
			case 1, 2:
				g, err = peer.Delivery(pectest.Params{Original: o, ReceiptType: []pec.ReceiptType{"", pec.ReceiptSintetica, pec.ReceiptCompleta}[i%4]})
			default:
				g, err = peer.NonDelivery(pectest.Params{Original: o})
			}
			if err != nil {
				firstErr.Store(err)
				return
			}
			base[i] = g.Bytes
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, err
	}
	msgs := make([][]byte, n)
	for i := range msgs {
		hdr := fmt.Sprintf("Received: from mx.pec.esempio.it by imap.archivio.invalid (pecarchive bench) id %08d;\r\n\tWed, 25 Nov 2026 10:00:00 +0100\r\n", i)
		msgs[i] = append([]byte(hdr), base[i%unique]...)
	}
	return msgs, nil
}

func parallel(n, conc int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errc <- err
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func benchFloor(ctx context.Context, cfg archiveBenchConfig, bucket string, msgs [][]byte) (float64, error) {
	c, err := minio.NewCore(cfg.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Region: "us-east-1",
	})
	if err != nil {
		return 0, err
	}
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1", ObjectLocking: true}); err != nil {
		return 0, err
	}
	mode := minio.Compliance
	start := time.Now()
	err = parallel(len(msgs), cfg.Concurrency, func(i int) error {
		sum := sha256.Sum256(msgs[i])
		h := hex.EncodeToString(sum[:])
		opts := minio.PutObjectOptions{
			ContentType: "application/octet-stream", DisableContentSha256: true,
			UserMetadata:    map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum[:])},
			Mode:            mode,
			RetainUntilDate: time.Now().Add(cfg.Retention).UTC().Truncate(time.Second).Add(time.Second),
		}
		opts.SetMatchETagExcept("*")
		_, err := c.PutObject(ctx, bucket, "sha256/"+h[:2]+"/"+h, bytes.NewReader(msgs[i]), int64(len(msgs[i])), "", h, opts)
		return err
	})
	if err != nil {
		return 0, err
	}
	return float64(len(msgs)) / time.Since(start).Seconds(), nil
}

func benchPipeline(ctx context.Context, cfg archiveBenchConfig, s settings, pool *pgxpool.Pool, bucket string, msgs [][]byte, out io.Writer) (float64, *merklelog.Log, error) {
	blobs, err := s3store.New(ctx, s3store.Config{
		Endpoint: cfg.Endpoint, AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey, Bucket: bucket,
		Retention: cfg.Retention, CreateBucket: true,
	})
	if err != nil {
		return 0, nil, err
	}
	skey, _, err := tlog.GenerateKey("bench.pecarchive.local/log")
	if err != nil {
		return 0, nil, err
	}
	if err := archive.Migrate(ctx, pool); err != nil {
		return 0, nil, err
	}
	l, _, err := openLogWithKey(ctx, pool, skey)
	if err != nil {
		return 0, nil, err
	}
	ca, err := pectest.NewCA(7, nil)
	if err != nil {
		return 0, nil, err
	}
	v, err := smime.New(smime.Config{Anchors: smime.NewTrustStore(ca.Root)})
	if err != nil {
		return 0, nil, err
	}
	a, err := archive.New(ctx, archive.Config{Pool: pool, Blobs: blobs, Log: l, Verifier: v, NoMigrate: true})
	if err != nil {
		return 0, nil, err
	}
	defer a.Close(context.Background())

	token, hash, err := auth.GenerateToken()
	if err != nil {
		return 0, nil, err
	}
	creds, err := auth.ParseCredentials([]byte("token " + hash + " bench ingest\n"))
	if err != nil {
		return 0, nil, err
	}
	authz, err := auth.NewAuthorizer(creds, grpcserver.DefaultPolicy(), nil)
	if err != nil {
		return 0, nil, err
	}
	srv, err := grpcserver.New(grpcserver.Config{Archive: a, Log: l, Authorizer: authz})
	if err != nil {
		return 0, nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	go srv.Serve(lis)
	defer srv.Stop()
	conn, client, err := archiveclient.Dial(lis.Addr().String(), archiveclient.DialOptions{Token: token})
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()

	var trusted, created atomic.Int64
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return 0, nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, nil, err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	err = parallel(len(msgs), cfg.Concurrency, func(i int) error {
		src := &archivev1.Source{Mailbox: "protocollo@pec.ordine.example.it", Folder: "INBOX", UidValidity: 1, Uid: uint32(i + 1)}
		rec, err := archiveclient.StoreBytes(ctx, client, msgs[i], src, nil)
		if err != nil {
			return err
		}
		if rec.GetVerdict().GetTrusted() {
			trusted.Add(1)
		}
		if rec.GetNew() {
			created.Add(1)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	elapsed := time.Since(start)
	if _, err := a.Publish(ctx); err != nil {
		return 0, nil, err
	}
	st := a.Stats()
	fmt.Fprintf(out, "pipeline: %d stored (%d new, %d valid+trusted) in %s; archive stats %+v\n",
		len(msgs), created.Load(), trusted.Load(), elapsed.Round(time.Millisecond), st)
	if int(trusted.Load()) != len(msgs) {
		return 0, nil, fmt.Errorf("%d of %d receipts were not valid+trusted", len(msgs)-int(trusted.Load()), len(msgs))
	}
	return float64(len(msgs)) / elapsed.Seconds(), l, nil
}

// benchProofs times InclusionProof for random leaves at the final tree size.
func benchProofs(ctx context.Context, l *merklelog.Log, n int) (p50, p99 time.Duration, size uint64, err error) {
	size, err = l.Size(ctx)
	if err != nil || size == 0 {
		return 0, 0, size, err
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		idx := rand.Uint64N(size)
		t := time.Now()
		if _, err := l.InclusionProof(ctx, idx, size); err != nil {
			return 0, 0, size, err
		}
		lat[i] = time.Since(t)
	}
	slices.Sort(lat)
	return lat[n/2], lat[min(n-1, n*99/100)], size, nil
}

type s3server struct {
	dir, endpoint, access, secret string
	pid                           int
	script                        string
	keep                          bool
}

func (s *s3server) stop() {
	_ = exec.Command(s.script, "stop", s.dir).Run()
	if !s.keep {
		os.RemoveAll(s.dir)
	}
}

// startS3Server starts a throw-away S3 server on a free loopback port with the project's script.
func startS3Server(kind string, keep bool) (*s3server, error) {
	script, err := findScript("s3-server.sh")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pecarchive-bench-s3-")
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	cmd := exec.Command(script, kind, dir, fmt.Sprint(port))
	cmd.Stderr = os.Stderr
	outb, err := cmd.Output()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", script, err)
	}
	srv := &s3server{dir: dir, script: script, keep: keep}
	sc := bufio.NewScanner(bytes.NewReader(outb))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "S3_ENDPOINT":
			srv.endpoint = v
		case "S3_ACCESS_KEY":
			srv.access = v
		case "S3_SECRET_KEY":
			srv.secret = v
		case "S3_PID":
			fmt.Sscan(v, &srv.pid)
		}
	}
	if srv.endpoint == "" {
		srv.stop()
		return nil, fmt.Errorf("%s printed no S3_ENDPOINT", script)
	}
	return srv, nil
}

// findScript looks for scripts/NAME in the working directory and its parents (the repository).
func findScript(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("scripts/%s not found: run from the repository, or pass -s3-endpoint", name)
		}
		dir = parent
	}
}

// pgCPU returns the CPU time used so far by the PostgreSQL server processes running on this
// machine (0 where none can be read, for example a remote server).
func pgCPU() time.Duration {
	d, _ := procstat.CPUByName("postgres")
	return d
}

// procCPU returns the CPU time process pid used so far, or 0 where it cannot be read.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	st, err := procstat.Read(pid)
	if err != nil {
		return 0
	}
	return st.CPU
}
