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

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/services/query"
)

// Settings of the query service (besides the store's, see config.go):
//
//	PECARCHIVE_QUERY_LISTEN            gRPC address (default 127.0.0.1:7444)
//	PECARCHIVE_QUERY_TLS_DIR           tls.crt, tls.key and optional client-ca.crt (default PECARCHIVE_TLS_DIR);
//	                                   unset: plaintext, loopback only
//	PECARCHIVE_QUERY_CREDENTIALS_FILE  tokens and certificates with the roles backoffice, service, auditor
//	                                   (default PECARCHIVE_CREDENTIALS_FILE)
//	PECARCHIVE_QUERY_PG_ROLE           the PostgreSQL role it reads as (default pecarchive_query, which catalog
//	                                   migration 0007 creates; "-" reads as the connecting user)
//	PECARCHIVE_ARCHIVE_ADDR (and its _TOKEN, _CA_FILE, _CERT_FILE, _KEY_FILE)
//	                                   the archive that records every read; its credentials need the role
//	                                   recorder. Unset: the archive is opened in-process from the same settings.

func init() {
	register("query", "run the query service (gRPC pecarchive.query.v1): prove deliveries, search, serve messages and proofs", runQuery)
}

func runQuery(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	listen := fs.String("listen", "", "gRPC listen address (default $PECARCHIVE_QUERY_LISTEN or 127.0.0.1:7444)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive query: %v\n", err)
		return exitUsage
	}
	if *listen == "" {
		*listen = s.get("PECARCHIVE_QUERY_LISTEN", "127.0.0.1:7444")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveQuery(ctx, s, *listen, log, nil, nil); err != nil {
		log.Error("query stopped", "err", err)
		return exitNotValid
	}
	return exitOK
}

// openReadPool connects to PostgreSQL for reading only: the archive's schema, as the role
// PECARCHIVE_QUERY_PG_ROLE, every transaction read-only.
func (s settings) openReadPool(ctx context.Context) (*pgxpool.Pool, error) {
	dsn := s.get("PECARCHIVE_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PECARCHIVE_PG_DSN: %v", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = s.get("PECARCHIVE_PG_SCHEMA", "pecarchive")
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	if role := s.get("PECARCHIVE_QUERY_PG_ROLE", "pecarchive_query"); role != "-" {
		cfg.ConnConfig.RuntimeParams["role"] = role
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres (reading as %s): %v", cfg.ConnConfig.RuntimeParams["role"], err)
	}
	return pool, nil
}

// openRecorder returns what records the reads: the archive at PECARCHIVE_ARCHIVE_ADDR, else the
// archive opened in-process. close releases it.
func (s settings) openRecorder(ctx context.Context) (query.Recorder, func(), error) {
	if addr := s.get("PECARCHIVE_ARCHIVE_ADDR", ""); addr != "" {
		conn, client, err := s.dialArchive(addr)
		if err != nil {
			return nil, nil, err
		}
		return query.RemoteRecorder{Client: client}, func() { conn.Close() }, nil
	}
	loc, closeLocal, err := s.openLocal(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	return loc.Archive, closeLocal, nil
}

// openQuery opens the query service from the settings: the reader on the read-only pool and the
// blob store, and the recorder (rec when not nil: the archive of the same process, already open).
// close releases everything it opened.
func (s settings) openQuery(ctx context.Context, rec query.Recorder) (*query.Service, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if rec == nil {
		r, closeRec, err := s.openRecorder(ctx) // first: in-process, it also migrates
		if err != nil {
			return nil, nil, err
		}
		rec = r
		closers = append(closers, closeRec)
	}
	pool, err := s.openReadPool(ctx)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	closers = append(closers, pool.Close)
	blobs, _, err := s.openBlobs(ctx)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	rd, err := reader.New(ctx, reader.Config{Pool: pool, Blobs: blobs})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	key, err := s.logPublicKey() // for evidence bundles
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	svc, err := query.New(ctx, query.Config{Reader: rd, Recorder: rec, LogKey: key})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return svc, closeAll, nil
}

// serveQuery runs the query service on listen until ctx ends. ready, when not nil, receives the
// address once it listens. rec, when not nil, records the reads (the archive of the same
// process); else openRecorder's.
func serveQuery(ctx context.Context, s settings, listen string, log *slog.Logger, ready chan<- string, rec query.Recorder) error {
	svc, closeSvc, err := s.openQuery(ctx, rec)
	if err != nil {
		return err
	}
	defer closeSvc()
	creds := auth.NewCredentials()
	if f := s.get("PECARCHIVE_QUERY_CREDENTIALS_FILE", s.get("PECARCHIVE_CREDENTIALS_FILE", "")); f != "" {
		if creds, err = auth.LoadCredentials(f); err != nil {
			return err
		}
	}
	authz, err := auth.NewAuthorizer(creds, query.DefaultPolicy(), &auth.Options{Public: query.PublicMethods()})
	if err != nil {
		return err
	}
	cfg := query.ServerConfig{Service: svc, Authorizer: authz, Log: log}
	if dir := s.get("PECARCHIVE_QUERY_TLS_DIR", s.get("PECARCHIVE_TLS_DIR", "")); dir != "" {
		st := auth.ServerTLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
		if _, err := os.Stat(filepath.Join(dir, "client-ca.crt")); err == nil {
			// Certificates or tokens: people of the back office often have only a token.
			st.ClientCAFile, st.ClientCertOptional = filepath.Join(dir, "client-ca.crt"), true
		}
		if cfg.TLS, err = st.Config(); err != nil {
			return err
		}
	} else if host, _, err := net.SplitHostPort(listen); err != nil || !isLoopback(host) {
		return errors.New("refusing to serve without TLS on a non-loopback address: set PECARCHIVE_QUERY_TLS_DIR")
	}
	srv, err := query.NewServer(cfg)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	log.Info("query serving", "addr", lis.Addr().String(), "tls", cfg.TLS != nil)
	if ready != nil {
		ready <- lis.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case <-ctx.Done():
		log.Info("query stopping")
		srv.GracefulStop()
		return nil
	case err := <-done:
		return err
	}
}
