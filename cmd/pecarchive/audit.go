package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
)

func init() {
	register("audit", "re-hash every blob, catalog row and log leaf, derive every derived row again; report anything missing, altered or unlogged", runAudit)
}

func runAudit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	logKey := fs.String("log-key", "", "the log's public key to check checkpoint signatures with (default: derived from the configured signing key)")
	deep := fs.Bool("deep", false, "also parse and verify every blob again as the archive does (with PECARCHIVE_TRUST and PECARCHIVE_PROVIDER_INDEX) and compare with its catalog row")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	ctx := context.Background()
	pool, err := s.openPool(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	defer pool.Close()
	if err := archive.Migrate(ctx, pool); err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	blobs, where, err := s.openBlobs(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	l, vkey, err := s.openLog(ctx, pool, blobs, false)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	if *logKey != "" {
		vkey = *logKey
	}
	cfg := audit.Config{Pool: pool, Blobs: blobs, Log: l, LogKey: vkey, Deep: *deep}
	if *deep {
		// The archive's verifier (PECARCHIVE_TRUST, PECARCHIVE_PROVIDER_INDEX): its index for every
		// message, its anchors for those verified without recorded ones.
		if cfg.Verifier, err = s.verifier(); err != nil {
			fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
			return exitUsage
		}
	}
	rep, err := audit.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "audit: blobs in %s\n", where)
	fmt.Fprintf(stdout, "audit: %d log leaves (%d messages, %d sources, %d accesses), %d catalog rows, %d blobs (%d bytes re-hashed), %d checkpoints, deliveries of %d message ids derived again, in %s\n",
		rep.LogSize, rep.MessageLeaves, rep.SourceLeaves, rep.AccessLeaves, rep.Rows, rep.Blobs, rep.BlobBytes, rep.Checkpoints,
		rep.DeliveryMsgIDs, rep.Finished.Sub(rep.Started).Round(1e6))
	fmt.Fprintf(stdout, "audit: %d sources, %d recipient rows, %d delivery events, %d links, %d certificate sets checked\n",
		rep.Sources, rep.Recipients, rep.Events, rep.Links, rep.CertSets)
	if rep.LegacyRows > 0 {
		fmt.Fprintf(stdout, "audit: %d rows have catalog/v1 leaves (received_at checked to the second, %d of their sources under no leaf)\n",
			rep.LegacyRows, rep.LegacySources)
	}
	if *deep {
		fmt.Fprintf(stdout, "audit: %d blobs parsed and verified again\n", rep.Reparsed)
	}
	for _, f := range rep.Findings {
		sev := "PROBLEM"
		if audit.Warning(f.Kind) {
			sev = "warning"
		}
		fmt.Fprintf(stdout, "%s: %s\n", sev, f)
	}
	if rep.Truncated {
		fmt.Fprintln(stdout, "audit: more findings than shown")
	}
	if !rep.OK() {
		fmt.Fprintln(stdout, "audit: FAILED")
		return exitNotValid
	}
	fmt.Fprintln(stdout, "audit: OK")
	return exitOK
}
