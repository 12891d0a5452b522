package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/pecarchive/pecarchive/services/ingest"
)

// `pecarchive serve` runs the archive, the query service and, when PECARCHIVE_MAILBOXES_FILE is
// set, ingest in one process from one configuration, on the settings of each (archive.go,
// query.go, ingest.go, config.go). The three share one archive opened in-process: it stays the
// single writer, query records every read through it and ingest stores through it, with no
// credentials between them. The archive's gRPC API still serves other clients (import, a remote
// ingest) on PECARCHIVE_LISTEN, and query's on PECARCHIVE_QUERY_LISTEN.

func init() {
	register("serve", "run the archive, query and (with PECARCHIVE_MAILBOXES_FILE) ingest services in one process, sharing one archive", runServe)
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	listen := fs.String("listen", "", "the archive's gRPC listen address (default $PECARCHIVE_LISTEN or 127.0.0.1:7443)")
	queryListen := fs.String("query-listen", "", "the query service's gRPC listen address (default $PECARCHIVE_QUERY_LISTEN or 127.0.0.1:7444)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "pecarchive serve: no arguments expected")
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive serve: %v\n", err)
		return exitUsage
	}
	if s.get("PECARCHIVE_ARCHIVE_ADDR", "") != "" {
		fmt.Fprintln(stderr, "pecarchive serve: PECARCHIVE_ARCHIVE_ADDR is set, but serve runs the archive itself: unset it, or run query and ingest on their own")
		return exitUsage
	}
	if *listen == "" {
		*listen = s.get("PECARCHIVE_LISTEN", "127.0.0.1:7443")
	}
	if *queryListen == "" {
		*queryListen = s.get("PECARCHIVE_QUERY_LISTEN", "127.0.0.1:7444")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveAll(ctx, s, *listen, *queryListen, log, nil); err != nil {
		var usage usageError
		if errors.As(err, &usage) {
			fmt.Fprintf(stderr, "pecarchive serve: %v\n", err)
			return exitUsage
		}
		log.Error("serve stopped", "err", err)
		return exitNotValid
	}
	return exitOK
}

// usageError is a setting serve cannot run with, found before anything starts.
type usageError struct{ error }

// serveAll runs the services until ctx ends or one of them fails, which stops the others; it
// returns that failure. ready, when not nil, receives "archive ADDR" and "query ADDR" once each
// listens.
func serveAll(ctx context.Context, s settings, listen, queryListen string, log *slog.Logger, ready chan<- string) error {
	withIngest := s.get("PECARCHIVE_MAILBOXES_FILE", "") != ""
	var mbs []ingest.Mailbox
	var opts *ingest.Options
	var metricsAddr string
	if withIngest {
		// Read before the archive opens, so a wrong file is a usage error, not a failed start.
		var err error
		if mbs, opts, err = s.ingestMailboxes(); err != nil {
			return usageError{err}
		}
		metricsAddr = s.get("PECARCHIVE_INGEST_METRICS_ADDR", "127.0.0.1:9464")
	}
	svc, cleanup, err := openArchiveService(ctx, s, log)
	if err != nil {
		return err
	}
	defer cleanup()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	run := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", name, err)
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	announce := func(name string) chan<- string {
		if ready == nil {
			return nil
		}
		ch := make(chan string, 1)
		go func() {
			select {
			case addr := <-ch:
				ready <- name + " " + addr
			case <-ctx.Done():
			}
		}()
		return ch
	}
	run("archive", func() error { return serveArchiveGRPC(ctx, s, listen, log, svc, announce("archive")) })
	run("query", func() error { return serveQuery(ctx, s, queryListen, log, announce("query"), svc.a) })
	if withIngest {
		run("ingest", func() error {
			return runIngestService(ctx, s, log, mbs, opts, localArchiver{svc.a, svc.rd}, metricsAddr)
		})
	}
	wg.Wait()
	return first
}

// runIngestService pulls mbs into arc until ctx ends, serving its metrics at metricsAddr ("" or
// "off": none).
func runIngestService(ctx context.Context, s settings, log *slog.Logger, mbs []ingest.Mailbox, opts *ingest.Options,
	arc ingest.Archiver, metricsAddr string) error {
	svc, _, stop, err := s.startIngest(ctx, log, mbs, opts, arc, metricsAddr)
	if err != nil {
		return err
	}
	defer stop()
	log.Info("ingest running", "mailboxes", len(mbs), "replica", svc.Replica())
	svc.Run(ctx)
	log.Info("ingest stopped")
	return nil
}
