package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

// auditKeys returns the log's public keys the audit checks signatures with: those given with
// --log-key and --log-keys, or else the configured signing key's with the old keys of
// PECARCHIVE_LOG_OLD_KEYS_FILE. With none, the audit refuses: it could not tell the log's
// checkpoints from anyone's.
func (s settings) auditKeys(given, files []string) ([]string, error) {
	keys := append([]string(nil), given...)
	for _, f := range files {
		text, err := readSmallFile(f, maxKeyFileSize)
		if err != nil {
			return nil, fmt.Errorf("--log-keys: %w", err)
		}
		keys = append(keys, string(text))
	}
	if len(keys) > 0 {
		return keys, nil
	}
	skey, err := s.logKey()
	if err != nil {
		return nil, fmt.Errorf("%w (or give the log's public keys with --log-key or --log-keys)", err)
	}
	vkey, err := tlog.VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	keys = append(keys, vkey)
	if f := s.get(envLogOldKeys, ""); f != "" {
		text, err := readSmallFile(f, maxKeyFileSize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envLogOldKeys, err)
		}
		keys = append(keys, string(text))
	}
	return keys, nil
}

func init() {
	register("audit", "re-hash every blob, catalog row and log leaf, derive every derived row again, check the log against every signed checkpoint; report anything missing, altered or unlogged", runAudit)
}

func runAudit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	var logKeys, keyFiles, outside multiFlag
	fs.Var(&logKeys, "log-key", "a public key of the log to check checkpoint signatures with (repeatable: the keys of before a rotation too; "+
		"default: derived from the configured signing key, with $"+envLogOldKeys+")")
	fs.Var(&keyFiles, "log-keys", "a file of the log's public keys, one per line (repeatable)")
	fs.Var(&outside, "checkpoint", "a signed checkpoint held outside the archive (an auditor's or a witness's copy) to check the log against (repeatable)")
	deep := fs.Bool("deep", false, "also parse and verify every blob again as the archive does (with PECARCHIVE_TRUST and PECARCHIVE_PROVIDER_INDEX) and compare with its catalog row")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pecarchive audit: unexpected argument %q\n", fs.Arg(0))
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
	// The audit writes nothing: it does not migrate (it refuses a schema whose migrations are not
	// the ones it reads), so credentials that may only read serve.
	blobs, where, err := s.openBlobs(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	keys, err := s.auditKeys(logKeys, keyFiles)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	var outs []audit.OutsideCheckpoint
	for _, f := range outside {
		b, err := readSmallFile(f, maxKeyFileSize)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive audit: --checkpoint: %v\n", err)
			return exitUsage
		}
		outs = append(outs, audit.OutsideCheckpoint{Name: f, Signed: b})
	}
	l, err := merklelog.New(ctx, merklelog.Config{Pool: pool})
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive audit: %v\n", err)
		return exitUsage
	}
	cfg := audit.Config{Pool: pool, Blobs: blobs, Log: l, LogKeys: keys, Outside: outs, Deep: *deep}
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
	fmt.Fprintf(stdout, "audit: %d checkpoints on write-once storage and %d held outside checked against the log\n",
		rep.WriteOnceCheckpoints, rep.OutsideCheckpoints)
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
