package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pecarchive/pecarchive/services/ingest"
)

// Settings of `pecarchive ingest` (besides the archive's, see archiver.go and config.go):
//
//	PECARCHIVE_MAILBOXES_FILE       the mailbox file (YAML; see services/ingest), required
//	PECARCHIVE_INGEST_METRICS_ADDR  Prometheus /metrics address (default 127.0.0.1:9464; "off" disables;
//	                                --once serves none unless it is set)
//	PECARCHIVE_INGEST_REPLICA       this replica's identity in mailbox leases (default host/pid/random)
//	PECARCHIVE_INGEST_LEASE         lease period (default 30s)
//	PECARCHIVE_INGEST_CONCURRENCY   Store calls in flight per mailbox (default 32)
//	PECARCHIVE_INGEST_STATUS_INTERVAL   STATUS check of the folders IDLE does not watch (default 1m)
//	PECARCHIVE_INGEST_FULL_PASS_INTERVAL  every folder pulled again, news or not (default 5m)
//	PECARCHIVE_INGEST_POLL_INTERVAL     pause between passes on servers without IDLE (default 1m)
//	PECARCHIVE_INGEST_AUTH_BACKOFF      pause after refused credentials or certificates (default 15m)

func init() {
	register("ingest", "pull the PEC mailboxes of PECARCHIVE_MAILBOXES_FILE into the archive over IMAP", runIngest)
}

func runIngest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	onceFlag := fs.Bool("once", false, "pull every configured folder to its end, print one line per folder and exit")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics at this address (default $PECARCHIVE_INGEST_METRICS_ADDR or 127.0.0.1:9464; off disables)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "pecarchive ingest: no arguments expected (the mailboxes come from PECARCHIVE_MAILBOXES_FILE)")
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive ingest: %v\n", err)
		return exitUsage
	}
	mbs, opts, err := s.ingestMailboxes()
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive ingest: %v\n", err)
		return exitUsage
	}
	if *metricsAddr == "" {
		*metricsAddr = s.get("PECARCHIVE_INGEST_METRICS_ADDR", "")
		if *metricsAddr == "" && !*onceFlag {
			*metricsAddr = "127.0.0.1:9464"
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	arc, closeArc, err := s.openArchiver(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive ingest: archive: %v\n", err)
		return exitNotValid
	}
	defer closeArc()
	svc, pool, stopIngest, err := s.startIngest(ctx, log, mbs, opts, arc, *metricsAddr)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive ingest: %v\n", err)
		return exitNotValid
	}
	defer stopIngest()
	if !*onceFlag {
		log.Info("ingest running", "mailboxes", len(mbs), "replica", svc.Replica())
		svc.Run(ctx)
		log.Info("ingest stopped")
		return exitOK
	}
	started := time.Now().Add(-time.Second)
	rep, err := svc.Once(ctx)
	for _, f := range rep.Folders {
		fmt.Fprintln(stdout, f.String())
	}
	// What the archive refused during this run (also in the ingest_dead_letters table).
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if dls, derr := ingest.DeadLetters(rctx, pool, "", started, 0); derr == nil {
		for _, d := range dls {
			fmt.Fprintf(stderr, "ingest: %s/%s UID %d/%d refused by the archive (sha256 %x, %d bytes): %s\n",
				d.Mailbox, d.Folder, d.UIDValidity, d.UID, d.SHA256, d.Size, d.Reason)
		}
	}
	for _, f := range rep.Failed {
		fmt.Fprintln(stderr, f.Error())
	}
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive ingest: %v\n", err)
		return exitNotValid
	}
	if len(rep.Failed) > 0 {
		return exitNotValid
	}
	return exitOK
}

// ingestMailboxes reads the mailbox file PECARCHIVE_MAILBOXES_FILE and the ingest settings.
func (s settings) ingestMailboxes() ([]ingest.Mailbox, *ingest.Options, error) {
	file := s.get("PECARCHIVE_MAILBOXES_FILE", "")
	if file == "" {
		return nil, nil, errors.New("set PECARCHIVE_MAILBOXES_FILE to the mailbox file")
	}
	mbs, err := ingest.LoadMailboxes(file)
	if err != nil {
		return nil, nil, err
	}
	opts, err := s.ingestOptions()
	if err != nil {
		return nil, nil, err
	}
	return mbs, opts, nil
}

// startIngest builds the ingest service on the pool of its cursors (opened here) and the archiver,
// and serves its metrics (and the Go and process collectors') at metricsAddr ("" or "off": none).
// stop releases what it opened.
func (s settings) startIngest(ctx context.Context, log *slog.Logger, mbs []ingest.Mailbox, opts *ingest.Options, arc ingest.Archiver,
	metricsAddr string) (_ *ingest.Service, _ *pgxpool.Pool, stop func(), err error) {
	pool, err := s.openPool(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := ingest.New(ctx, ingest.Config{Mailboxes: mbs, Archiver: arc, Pool: pool, LookupEnv: os.LookupEnv,
		Replica: s.get("PECARCHIVE_INGEST_REPLICA", ""), Registerer: reg, Logger: log, Options: opts})
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	stopMetrics := func() {}
	if metricsAddr != "" && metricsAddr != "off" {
		if stopMetrics, err = serveMetrics(metricsAddr, reg, log); err != nil {
			pool.Close()
			return nil, nil, nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return svc, pool, func() { stopMetrics(); pool.Close() }, nil
}

// ingestOptions reads the ingest tuning settings.
func (s settings) ingestOptions() (*ingest.Options, error) {
	o := &ingest.Options{}
	var err error
	for _, d := range []struct {
		key string
		p   *time.Duration
	}{
		{"PECARCHIVE_INGEST_LEASE", &o.LeaseTTL},
		{"PECARCHIVE_INGEST_STATUS_INTERVAL", &o.StatusInterval},
		{"PECARCHIVE_INGEST_FULL_PASS_INTERVAL", &o.FullPassInterval},
		{"PECARCHIVE_INGEST_POLL_INTERVAL", &o.PollInterval},
		{"PECARCHIVE_INGEST_AUTH_BACKOFF", &o.AuthBackoff},
	} {
		if *d.p, err = s.duration(d.key, 0); err != nil {
			return nil, err
		}
	}
	if v := s.get("PECARCHIVE_INGEST_CONCURRENCY", ""); v != "" {
		if o.Concurrency, err = strconv.Atoi(v); err != nil || o.Concurrency < 1 {
			return nil, fmt.Errorf("PECARCHIVE_INGEST_CONCURRENCY: want a positive number, not %q", v)
		}
	}
	return o, nil
}

// serveMetrics serves reg at http://addr/metrics (loopback by default: another address is
// served only when set explicitly, since the metrics name the mailboxes).
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("metrics", "addr", "http://"+lis.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
