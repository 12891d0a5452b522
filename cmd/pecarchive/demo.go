package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
)

func init() {
	register("demo", "generate every PEC message kind with the test provider and inspect it", runDemo)
}

// runDemo is the main job on embedded defaults: the built-in test provider generates one message
// of every kind (and every failure case), the files are written to a folder, and each is inspected
// exactly as `pecarchive inspect --trust <test root>` would, checking each verdict against what the
// provider meant to produce.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "test provider seed (the same seed gives the same bytes)")
	out := fs.String("out", "", "folder for the generated messages and the test root (default: a new temporary folder)")
	withArchive := fs.Bool("archive", false, "also run the archive on embedded defaults: store a conversation (filesystem blobs, local PostgreSQL), prove a delivery, audit, export an evidence bundle and verify it offline")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	dir := *out
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "pecarchive-demo-"); err != nil {
			fmt.Fprintf(stderr, "pecarchive demo: %v\n", err)
			return exitUsage
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "pecarchive demo: %v\n", err)
		return exitUsage
	}
	ca, err := pectest.NewCA(*seed, nil)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive demo: %v\n", err)
		return exitUsage
	}
	rootFile := filepath.Join(dir, "test-root.pem")
	if err := os.WriteFile(rootFile, ca.RootPEM(), 0o644); err != nil {
		fmt.Fprintf(stderr, "pecarchive demo: %v\n", err)
		return exitUsage
	}
	v, err := smime.New(smime.Config{Anchors: smime.Merge(smime.DefaultTrustStore(), smime.NewTrustStore(ca.Root))})
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive demo: %v\n", err)
		return exitUsage
	}
	msgs := pectest.AllKinds(*seed)
	fmt.Fprintf(stdout, "pecarchive demo: %d messages from the test provider (seed %d) in %s\n", len(msgs), *seed, dir)
	fmt.Fprintf(stdout, "each is inspected as by: pecarchive inspect --trust %s FILE\n\n", rootFile)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE\tKIND\tTYPE\tSIGNATURE\tREASONS\tAS MEANT")
	mismatches := 0
	for _, g := range msgs {
		file := filepath.Join(dir, g.Name+".eml")
		if err := os.WriteFile(file, g.Bytes, 0o644); err != nil {
			fmt.Fprintf(stderr, "pecarchive demo: %v\n", err)
			return exitUsage
		}
		r := inspectBytes(context.Background(), v, file, g.Bytes, time.Time{})
		verdict := "unsigned"
		switch {
		case !r.Signature.Present:
		case r.Signature.Valid && r.Signature.Trusted:
			verdict = "valid, trusted"
		case r.Signature.Valid:
			verdict = "valid, NOT trusted"
		default:
			verdict = "INVALID"
		}
		kindOK := r.Kind == string(g.Kind)
		asMeant := kindOK && r.Signature.Valid == g.WantValid && r.Signature.Trusted == g.WantTrusted
		mark := "yes"
		if !asMeant {
			mark = "NO"
			mismatches++
		}
		reasons := strings.Join(r.Signature.Reasons, ",")
		if reasons == "" {
			reasons = "-"
		}
		typ := r.ReceiptType
		if r.Error != "" && r.Error != "nessuno" {
			typ = r.Error
		}
		if typ == "" {
			typ = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, r.Kind, typ, verdict, reasons, mark)
	}
	tw.Flush()
	if mismatches > 0 {
		fmt.Fprintf(stdout, "\n%d verdicts differ from what the test provider meant\n", mismatches)
		return exitNotValid
	}
	fmt.Fprintf(stdout, "\nevery verdict is as the test provider meant: genuine messages valid and trusted, every forged, tampered, truncated or badly certified one caught\n")
	if *withArchive {
		s, err := loadSettings("")
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive demo: %v\n", err)
			return exitUsage
		}
		if err := demoArchive(context.Background(), s, *seed, dir, stdout); err != nil {
			fmt.Fprintf(stderr, "pecarchive demo: archive: %v\n", err)
			return exitNotValid
		}
	}
	return exitOK
}
