package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/tlog"
)

func init() {
	register("verify-bundle", "check an evidence bundle offline (no database, no network)", runVerifyBundle)
}

// verifyBundleResult is `pecarchive verify-bundle --json` (a contract: ok and failures; the rest
// extends it).
type verifyBundleResult struct {
	Bundle     string             `json:"bundle"`
	OK         bool               `json:"ok"`
	Failures   []evidence.Failure `json:"failures"`
	Warnings   []string           `json:"warnings"`
	LogKey     string             `json:"log_key"` // "given" or "bundled": what the checkpoint was checked against
	Messages   int                `json:"messages"`
	Deliveries int                `json:"deliveries"`
}

func runVerifyBundle(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify-bundle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyArg := fs.String("log-key", "", "file holding the log's public key, obtained independently of the bundle (or the key itself; for a log whose key was rotated, a file of its keys, one per line); without it the bundled key is used, which proves only that the bundle agrees with itself")
	var held multiFlag
	fs.Var(&held, "checkpoint", "a signed checkpoint of the log you hold (repeatable): the bundle must show that its log extends it")
	asJSON := fs.Bool("json", false, "print one JSON object with ok and failures[]")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pecarchive verify-bundle BUNDLE.zip [--log-key FILE] [--checkpoint FILE]... [--json]")
		fs.PrintDefaults()
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(files) != 1 {
		fs.Usage()
		return exitUsage
	}
	key, err := readLogKey(*keyArg)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive verify-bundle: %v\n", err)
		return exitUsage
	}
	var checkpoints [][]byte
	for _, f := range held {
		b, err := readSmallFile(f, tlog.MaxCheckpointSize)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive verify-bundle: %v\n", err)
			return exitUsage
		}
		checkpoints = append(checkpoints, b)
	}
	f, err := os.Open(files[0])
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive verify-bundle: %v\n", err)
		return exitUsage
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		fmt.Fprintf(stderr, "pecarchive verify-bundle: %s is not a regular file\n", files[0])
		return exitUsage
	}
	res := evidence.VerifyReaderAt(context.Background(), f, st.Size(), &evidence.VerifyOptions{LogKey: key, Checkpoints: checkpoints})
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "WARNING: %s\n", w)
	}
	if *asJSON {
		out := verifyBundleResult{Bundle: files[0], OK: res.OK, Failures: res.Failures, Warnings: res.Warnings,
			LogKey: res.KeySource, Messages: res.Messages, Deliveries: res.Deliveries}
		if err := json.NewEncoder(stdout).Encode(out); err != nil {
			return exitUsage
		}
	} else {
		for _, fl := range res.Failures {
			fmt.Fprintln(stdout, fl.String())
		}
		status := "OK"
		if !res.OK {
			status = fmt.Sprintf("FAILED (%d failures)", len(res.Failures))
		}
		checked := map[string]string{evidence.KeyGiven: "checkpoint checked against the key given",
			evidence.KeyBundled: "checkpoint checked against the BUNDLED key only"}[res.KeySource]
		if checked == "" {
			checked = "checkpoint's signature NOT checked"
		}
		fmt.Fprintf(stdout, "verify-bundle: %s: %d messages, %d deliveries, %s: %s\n",
			files[0], res.Messages, res.Deliveries, checked, status)
	}
	if !res.OK {
		return exitNotValid
	}
	return exitOK
}

// readLogKey returns the public key named by arg: a file holding it (the output of `pecarchive
// logkey public`; for a rotated log, its keys one per line), or the key itself; "" when arg is
// empty.
func readLogKey(arg string) (string, error) {
	if arg == "" {
		return "", nil
	}
	data, err := readSmallFile(arg, 64<<10)
	if err != nil {
		if _, kerr := tlog.NewVerifier(arg); kerr == nil {
			return arg, nil
		}
		return "", fmt.Errorf("log key: %w", err)
	}
	keys, err := tlog.ParseVerifierKeys(string(data))
	if err == nil && len(keys) == 0 {
		err = errors.New("no key in it")
	}
	if err != nil {
		return "", fmt.Errorf("log key in %s: %w", arg, err)
	}
	return string(data), nil
}

// readSmallFile reads a file of at most max bytes.
func readSmallFile(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is over %d bytes", name, max)
	}
	return b, nil
}
