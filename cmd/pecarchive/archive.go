package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

func init() {
	register("archive", "run the archive service (gRPC pecarchive.archive.v1)", runArchive)
}

func runArchive(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	listen := fs.String("listen", "", "gRPC listen address (default $PECARCHIVE_LISTEN or 127.0.0.1:7443)")
	metrics := fs.String("metrics", "", "serve Prometheus metrics at this address (default $"+envArchiveMetrics+"; none when unset)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive archive: %v\n", err)
		return exitUsage
	}
	if *metrics != "" {
		s[envArchiveMetrics] = *metrics
	}
	if *listen == "" {
		*listen = s.get("PECARCHIVE_LISTEN", "127.0.0.1:7443")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveArchive(ctx, s, *listen, log); err != nil {
		log.Error("archive stopped", "err", err)
		return exitNotValid
	}
	return exitOK
}

func serveArchive(ctx context.Context, s settings, listen string, log *slog.Logger) error {
	svc, cleanup, err := openArchiveService(ctx, s, log)
	if err != nil {
		return err
	}
	defer cleanup()
	return serveArchiveGRPC(ctx, s, listen, log, svc, nil)
}

// archiveService is the archive a service process runs: the single writer, its reader, and where
// its blobs and its log key are (for the start-up line).
type archiveService struct {
	a          *archive.Archive
	rd         *reader.Reader
	where      string
	logKeyName string
}

// openArchiveService opens the archive as the service runs it (migrated, checkpointing on its
// interval, logging its background errors, serving its metrics when PECARCHIVE_ARCHIVE_METRICS_ADDR
// is set). cleanup closes it.
func openArchiveService(ctx context.Context, s settings, log *slog.Logger) (_ *archiveService, _ func(), err error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	pool, err := s.openPool(ctx)
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, pool.Close)
	if err := archive.Migrate(ctx, pool); err != nil {
		return nil, nil, err
	}
	blobs, where, err := s.openBlobs(ctx)
	if err != nil {
		return nil, nil, err
	}
	l, vkey, err := s.openLog(ctx, pool, blobs, true)
	if err != nil {
		return nil, nil, err
	}
	interval, err := s.duration("PECARCHIVE_CHECKPOINT_INTERVAL", time.Minute)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.verifier()
	if err != nil {
		return nil, nil, err
	}
	a, err := archive.New(ctx, archive.Config{
		Pool: pool, Blobs: blobs, Log: l, Verifier: v, CheckpointInterval: interval, NoMigrate: true,
		OnError: func(err error) {
			if errors.Is(err, archive.ErrIntegrity) {
				log.Error("archive: evidence integrity", "err", err)
				return
			}
			log.Warn("archive background work", "err", err)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { a.Close(context.Background()) })
	if addr := s.get(envArchiveMetrics, ""); addr != "" && addr != "off" {
		stopMetrics, err := serveMetrics(addr, archiveRegistry(a), log)
		if err != nil {
			return nil, nil, fmt.Errorf("metrics: %w", err)
		}
		closers = append(closers, stopMetrics)
	}
	rd, err := reader.New(ctx, reader.Config{Pool: pool, Blobs: blobs, Log: l})
	if err != nil {
		return nil, nil, err
	}
	return &archiveService{a: a, rd: rd, where: where, logKeyName: vkey}, closeAll, nil
}

// serveArchiveGRPC serves svc's gRPC API (pecarchive.archive.v1) on listen until ctx ends. ready,
// when not nil, receives the address once it listens.
func serveArchiveGRPC(ctx context.Context, s settings, listen string, log *slog.Logger, svc *archiveService, ready chan<- string) error {
	var err error
	creds := auth.NewCredentials()
	if f := s.get("PECARCHIVE_CREDENTIALS_FILE", ""); f != "" {
		if creds, err = auth.LoadCredentials(f); err != nil {
			return err
		}
	}
	authz, err := auth.NewAuthorizer(creds, grpcserver.DefaultPolicy(), nil)
	if err != nil {
		return err
	}
	idle, err := s.duration("PECARCHIVE_STORE_IDLE_TIMEOUT", grpcserver.DefaultMaxIdleTime)
	if err != nil {
		return err
	}
	cfg := grpcserver.Config{Archive: svc.a, Reader: svc.rd, Authorizer: authz, MaxIdleTime: idle}
	if dir := s.get("PECARCHIVE_TLS_DIR", ""); dir != "" {
		st := auth.ServerTLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
		if _, err := os.Stat(filepath.Join(dir, "client-ca.crt")); err == nil {
			st.ClientCAFile = filepath.Join(dir, "client-ca.crt")
		}
		if cfg.TLS, err = st.Config(); err != nil {
			return err
		}
	} else if host, _, err := net.SplitHostPort(listen); err != nil || !isLoopback(host) {
		return errors.New("refusing to serve without TLS on a non-loopback address: set PECARCHIVE_TLS_DIR")
	}
	srv, err := grpcserver.New(cfg)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	log.Info("archive serving", "addr", lis.Addr().String(), "blobs", svc.where, "log_key", svc.logKeyName, "tls", cfg.TLS != nil,
		"trust", s.get("PECARCHIVE_TRUST", "built-in anchors only"), "provider_index", s.get("PECARCHIVE_PROVIDER_INDEX", "none"))
	if ready != nil {
		ready <- lis.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		log.Info("archive stopping")
		srv.GracefulStop()
		return nil
	case err := <-done:
		return err
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
