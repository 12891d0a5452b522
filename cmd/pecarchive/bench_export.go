package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/evidence"
	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/services/query"
	"github.com/pecarchive/pecarchive/tlog"
)

func init() {
	benchmarks["export"] = benchExport
	benchmarks["rss"] = benchRSS
}

// benchExport archives generated notices (through the archive's Store: parsed, verified,
// catalogued, logged), then, for bundles of 1, 100 and 1,000 messages, measures the export
// (Service.Export: look-ups, proofs, records, the access record, the ZIP) against the floor of
// zipping the same bytes from the same blob store with the same compressor and no proofs, in
// alternating rounds, and the offline verification of each bundle on one core. It runs the real
// `pecarchive export` and `pecarchive verify-bundle` once per bundle for their peak RSS, and the
// same for a bundle of one 50 MB message. The last line is "ratio: X.XX": the floor's time over
// the export's for the largest bundle.
func benchExport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "1,100,1000", "bundle sizes, in messages (1, or multiples of 5: notices of an original, an acceptance, an envelope and a complete delivery receipt carrying the original)")
	rounds := fs.Int("rounds", 9, "rounds of floor and export per size, taking turns; medians are reported")
	bigMB := fs.Int("big-mb", 50, "size in MB of the one large message (a signed transport envelope) bundled alone; 0 skips it")
	keep := fs.Bool("keep", false, "keep the PostgreSQL schema and the data folder (their names are printed)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the largest bundle's rounds (exports and floors) to this file")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg := exportBenchConfig{Rounds: *rounds, BigMB: *bigMB, Keep: *keep, Subprocess: true, CPUProfile: *cpuprofile}
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n != 1 && n%5 != 0 {
			fmt.Fprintf(stderr, "pecarchive bench export: -sizes: %q is not 1 or a positive multiple of 5\n", f)
			return exitUsage
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	if *rounds <= 0 || *bigMB < 0 || *bigMB > 60 {
		fmt.Fprintln(stderr, "pecarchive bench export: -rounds must be positive, -big-mb between 0 and 60")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runExportBench(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "pecarchive bench export: %v\n", err)
		return exitNotValid
	}
	return exitOK
}

type exportBenchConfig struct {
	Sizes      []int
	Rounds     int
	BigMB      int
	Keep       bool
	Subprocess bool // run the pecarchive binary for peak RSS (not from a test binary)
	CPUProfile string
}

// exportGroup is one bundle of the benchmark: the notices of one sender.
type exportGroup struct {
	sender   string
	selector []string // of pecarchive export
	req      query.ExportRequest
	messages int
	sums     [][32]byte // the bundle's messages, for the floor
}

func runExportBench(ctx context.Context, cfg exportBenchConfig, out io.Writer) error {
	dir, err := os.MkdirTemp("", "pecarchive-bench-export-")
	if err != nil {
		return err
	}
	s, err := loadSettings("")
	if err != nil {
		return err
	}
	if s.get("PECARCHIVE_PG_DSN", "") == "" {
		s["PECARCHIVE_PG_DSN"] = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := fmt.Sprintf("bench_export_%d", time.Now().UnixNano())
	s["PECARCHIVE_PG_SCHEMA"] = schema
	s["PECARCHIVE_DATA_DIR"] = dir
	s["PECARCHIVE_BLOB_DIR"] = filepath.Join(dir, "blobs")
	delete(s, "PECARCHIVE_S3_ENDPOINT")
	delete(s, "PECARCHIVE_QUERY_ADDR")
	skey, vkey, err := tlog.GenerateKey("bench.pecarchive.local/log")
	if err != nil {
		return err
	}
	keyFile, pubFile := filepath.Join(dir, "log.key"), filepath.Join(dir, "log.pub")
	if err := writeSecretFile(keyFile, []byte(skey+"\n")); err != nil {
		return err
	}
	if err := os.WriteFile(pubFile, []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	s["PECARCHIVE_LOG_KEY_FILE"] = keyFile
	pool, err := s.openPool(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cfg.Keep {
			fmt.Fprintf(out, "kept: schema %s, data folder %s\n", schema, dir)
		} else {
			_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			os.RemoveAll(dir)
		}
		pool.Close()
	}()
	if err := archive.Migrate(ctx, pool); err != nil {
		return err
	}
	blobs, err := fsstore.New(ctx, fsstore.Config{Root: s["PECARCHIVE_BLOB_DIR"]})
	if err != nil {
		return err
	}
	l, _, err := openLogWithKey(ctx, pool, blobs, skey, nil)
	if err != nil {
		return err
	}
	prov, err := pectest.NewProvider(7, nil)
	if err != nil {
		return err
	}
	peer, err := prov.Peer(nil)
	if err != nil {
		return err
	}
	v, err := smime.New(smime.Config{Anchors: smime.NewTrustStore(prov.CA.Root, prov.CA.Intermediate)})
	if err != nil {
		return err
	}
	a, err := archive.New(ctx, archive.Config{Pool: pool, Blobs: blobs, Log: l, Verifier: v, NoMigrate: true,
		CheckpointInterval: -1, CheckpointEvery: -1})
	if err != nil {
		return err
	}
	defer a.Close(context.Background())
	fmt.Fprintf(out, "postgres: schema %s; blobs: write-once files in %s\n", schema, s["PECARCHIVE_BLOB_DIR"])

	// Fill: per size, the notices of one sender.
	t0 := time.Now()
	var groups []exportGroup
	stored := 0
	for gi, size := range cfg.Sizes {
		g := exportGroup{sender: fmt.Sprintf("segreteria-%d@%s", gi, pectest.ProviderA.Domain), messages: size}
		// A notice with receipts is found by its sender; an original alone (no receipt yet) by
		// its msgid.
		g.req = query.ExportRequest{Selectors: []query.Selector{{Sender: g.sender}}}
		g.selector = []string{"--sender", g.sender}
		if size == 1 {
			id := fmt.Sprintf("avviso-%d-0@pec.ordine.example.it", gi)
			g.req = query.ExportRequest{Selectors: []query.Selector{{MsgID: id}}}
			g.selector = []string{"--msgid", id}
		}
		notices := max(1, size/5)
		for i := range notices {
			o, err := prov.Original(&pectest.Original{From: g.sender, To: []string{fmt.Sprintf("iscritto-%d-%d@%s", gi, i, pectest.ProviderB.Domain)},
				Subject: fmt.Sprintf("Avviso %d del gruppo %d", i, gi), MessageID: fmt.Sprintf("avviso-%d-%d@pec.ordine.example.it", gi, i),
				Date: pectest.DefaultTime.Add(time.Duration(stored) * time.Second)})
			if err != nil {
				return err
			}
			raws := [][]byte{o.Raw}
			if size > 1 {
				acc, err := prov.Acceptance(pectest.Params{Original: o})
				if err != nil {
					return err
				}
				env, err := prov.Envelope(pectest.Params{Original: o})
				if err != nil {
					return err
				}
				del, err := peer.Delivery(pectest.Params{Original: o, ReceiptType: pec.ReceiptCompleta})
				if err != nil {
					return err
				}
				raws = append(raws, acc.Bytes, env.Bytes, del.Bytes)
			}
			for _, raw := range raws {
				if _, err := a.Store(ctx, raw, archive.Source{Mailbox: "bench", Folder: "INBOX", Path: fmt.Sprintf("%d", stored)}); err != nil {
					return err
				}
				stored++
			}
		}
		groups = append(groups, g)
	}
	var big *exportGroup
	if cfg.BigMB > 0 {
		// One signed transport envelope of about BigMB MB carrying the original: up to 24 MB of
		// attachments (32 MB in base64, pectest's limit) and a long text body for the rest (sent
		// as text and as HTML, both in base64).
		total := cfg.BigMB << 20
		part := min(total*3/4, 24<<20) / 2
		body := ""
		if rest := total - part*2*4/3; rest > 0 {
			body = hex.EncodeToString(prov.FileData(rest*3/8/2, "body"))
		}
		o, err := prov.Original(&pectest.Original{From: "grande@" + pectest.ProviderA.Domain, To: []string{"destinatario@" + pectest.ProviderB.Domain},
			Subject: "Allegati grandi", MessageID: "grande@pec.ordine.example.it", Body: body, Attachments: []pectest.Attachment{
				{Name: "parte-1.pdf", ContentType: "application/pdf", Data: prov.FileData(part, "1")},
				{Name: "parte-2.pdf", ContentType: "application/pdf", Data: prov.FileData(part, "2")}}})
		if err != nil {
			return err
		}
		env, err := prov.Envelope(pectest.Params{Original: o})
		if err != nil {
			return err
		}
		if _, err := a.Store(ctx, env.Bytes, archive.Source{Mailbox: "bench", Folder: "INBOX", Path: "big"}); err != nil {
			return err
		}
		stored++
		big = &exportGroup{sender: "", messages: 1}
		fmt.Fprintf(out, "large message: a signed transport envelope of %.1f MB\n", float64(len(env.Bytes))/1e6)
	}
	if _, err := a.Publish(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "fill: %d messages stored through the archive (parsed, verified, catalogued, logged) in %s\n", stored, time.Since(t0).Round(time.Millisecond))

	rd, err := reader.New(ctx, reader.Config{Pool: pool, Blobs: blobs})
	if err != nil {
		return err
	}
	svc, err := query.New(ctx, query.Config{Reader: rd, Recorder: a, LogKey: vkey})
	if err != nil {
		return err
	}
	who := query.Caller{Name: "bench", Auth: "local"}
	method := querypb.EvidenceService_ExportEvidenceBundle_FullMethodName
	bundleFile := filepath.Join(dir, "bundle.zip")

	// timed writes the file name with fn through a 1 MB buffer, and returns the wall and CPU time.
	timed := func(name string, fn func(w io.Writer, start time.Time) error) (time.Duration, time.Duration, error) {
		f, err := os.Create(name)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		c0 := cpuTime()
		w0 := time.Now()
		bw := bufio.NewWriterSize(f, 1<<20)
		err = fn(bw, w0)
		if err == nil {
			err = bw.Flush()
		}
		return time.Since(w0), cpuTime() - c0, err
	}
	export := func(req query.ExportRequest) (time.Duration, time.Duration, error) {
		return timed(bundleFile, func(w io.Writer, _ time.Time) error { return svc.Export(ctx, who, method, req, w) })
	}
	floorFile := filepath.Join(dir, "floor.zip")
	floor := func(sums [][32]byte) (time.Duration, time.Duration, error) {
		return timed(floorFile, func(w io.Writer, start time.Time) error {
			zw := zip.NewWriter(w)
			evidence.UseCompressor(zw)
			for _, sum := range sums {
				rc, err := rd.Open(ctx, sum)
				if err != nil {
					return err
				}
				w, err := zw.CreateHeader(&zip.FileHeader{Name: evidence.MessageName(sum), Method: zip.Deflate, Modified: start})
				if err == nil {
					_, err = io.Copy(w, rc)
				}
				rc.Close()
				if err != nil {
					return err
				}
			}
			return zw.Close()
		})
	}
	verify := func(workers int) (*evidence.Result, time.Duration, time.Duration, error) {
		f, err := os.Open(bundleFile)
		if err != nil {
			return nil, 0, 0, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, 0, 0, err
		}
		runtime.GC()
		c0 := cpuTime()
		w0 := time.Now()
		res := evidence.VerifyReaderAt(ctx, f, st.Size(), &evidence.VerifyOptions{LogKey: vkey, Workers: workers})
		wall, cpu := time.Since(w0), cpuTime()-c0
		if !res.OK {
			return res, 0, 0, fmt.Errorf("the bundle does not verify: %v", res.Failures[0])
		}
		return res, wall, cpu, nil
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

	var ratio float64
	for gi := range groups {
		g := &groups[gi]
		req := g.req
		// The first export tells the floor which bytes to zip.
		if _, _, err := export(req); err != nil {
			return err
		}
		res, _, _, err := verify(1)
		if err != nil {
			return err
		}
		for _, m := range res.Manifest.Messages {
			b, err := hex.DecodeString(m.SHA256)
			if err != nil || len(b) != 32 {
				return fmt.Errorf("message %q", m.SHA256)
			}
			g.sums = append(g.sums, [32]byte(b))
		}
		if len(g.sums) != g.messages {
			return fmt.Errorf("the bundle of %s holds %d messages, not %d", g.sender, len(g.sums), g.messages)
		}
		var ex, exCPU, fl, flCPU []time.Duration
		if cfg.CPUProfile != "" && gi == len(groups)-1 { // the largest bundle's rounds, floor included
			f, err := os.Create(cfg.CPUProfile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		for range cfg.Rounds {
			d, c, err := floor(g.sums)
			if err != nil {
				return err
			}
			fl, flCPU = append(fl, d), append(flCPU, c)
			w, c, err := export(req)
			if err != nil {
				return err
			}
			ex, exCPU = append(ex, w), append(exCPU, c)
		}
		st, _ := os.Stat(bundleFile)
		fst, _ := os.Stat(floorFile)
		var vw, vc, vw2 []time.Duration
		for range cfg.Rounds {
			_, w, c, err := verify(1)
			if err != nil {
				return err
			}
			vw, vc = append(vw, w), append(vc, c)
			_, w, _, err = verify(0)
			if err != nil {
				return err
			}
			vw2 = append(vw2, w)
		}
		perCore := float64(g.messages) / median(vc).Seconds()
		r := float64(median(fl)) / float64(median(ex))
		fmt.Fprintf(out, "bundle of %s (%.2f MB; floor zip %.2f MB): export %s (CPU %s), zip floor %s (CPU %s): floor/export %.2f (CPU %.2f)\n",
			plural(g.messages, "message"), float64(st.Size())/1e6, float64(fst.Size())/1e6, ms(median(ex)), ms(median(exCPU)),
			ms(median(fl)), ms(median(flCPU)), r, float64(median(flCPU))/float64(median(exCPU)))
		fmt.Fprintf(out, "  verify-bundle: %s on one core (CPU %s: %.0f messages/s per core), %s on %d cores\n",
			ms(median(vw)), ms(median(vc)), perCore, ms(median(vw2)), runtime.GOMAXPROCS(0))
		if cfg.Subprocess {
			if err := rssLine(ctx, s, out, g.selector, pubFile, dir); err != nil {
				return err
			}
		}
		ratio = r
	}
	if big != nil {
		req := query.ExportRequest{Selectors: []query.Selector{{MsgID: "grande@pec.ordine.example.it"}}}
		w, c, err := export(req)
		if err != nil {
			return err
		}
		st, _ := os.Stat(bundleFile)
		_, vw, vc, err := verify(1)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "bundle of one %d MB message (%.2f MB): export %s (CPU %s); verify-bundle %s (CPU %s)\n",
			cfg.BigMB, float64(st.Size())/1e6, ms(w), ms(c), ms(vw), ms(vc))
		if cfg.Subprocess {
			if err := rssLine(ctx, s, out, []string{"--msgid", "grande@pec.ordine.example.it"}, pubFile, dir); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "targets: ratio ≥0.50 (export under twice the zip floor) at %d messages; verify-bundle ≥2,000 messages/s per core\n", groups[len(groups)-1].messages)
	fmt.Fprintf(out, "ratio: %.2f\n", ratio)
	return nil
}

// rssLine runs the pecarchive binary's export (in-process, as a person would) and verify-bundle
// on the bundle it writes, each under `pecarchive bench rss` in a process of its own, and prints
// the wall time and peak RSS of each.
func rssLine(ctx context.Context, s settings, out io.Writer, selector []string, pubFile, dir string) error {
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PECARCHIVE_") {
			env = append(env, kv)
		}
	}
	for k, v := range s {
		env = append(env, k+"="+v)
	}
	file := filepath.Join(dir, "cli-bundle.zip")
	os.Remove(file)
	run := func(args ...string) (time.Duration, string, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"bench", "rss", "--"}, args...)...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			return 0, "", fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		rss := ""
		for _, line := range strings.Split(stdout.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "peak RSS: "); ok {
				rss = v
			}
		}
		return d, rss, nil
	}
	ew, erss, err := run(append([]string{"export", "--out", file}, selector...)...)
	if err != nil {
		return err
	}
	vw, vrss, err := run("verify-bundle", file, "--log-key", pubFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  the commands: pecarchive export %.0f ms, peak RSS %s; pecarchive verify-bundle %.0f ms, peak RSS %s\n",
		float64(ew)/1e6, erss, float64(vw)/1e6, vrss)
	return nil
}

// benchRSS runs a pecarchive command in this process and then prints its peak resident set
// (VmHWM: this process's own, which a parent's rusage would overstate with the memory the
// parent had when it started this one).
func benchRSS(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: pecarchive bench rss -- COMMAND [ARGS]")
		return exitUsage
	}
	code := run(args, io.Discard, stderr)
	peak, err := vmHWM()
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive bench rss: %v\n", err)
		return exitNotValid
	}
	fmt.Fprintf(stdout, "peak RSS: %.1f MB\n", float64(peak)/(1<<20))
	return code
}

// cpuTime is the CPU time this process has used (user and system), to the microsecond.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
