package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/services/query"
	"github.com/pecarchive/pecarchive/tlog"
)

// Settings of `pecarchive export` are those of `pecarchive prove` (PECARCHIVE_QUERY_ADDR and
// its credentials; unset: in-process), and for the query service, the log's public key that
// bundles carry:
//
//	PECARCHIVE_LOG_PUBLIC_KEY_FILE, PECARCHIVE_LOG_PUBLIC_KEY   the log's public key (default:
//	                                derived from the signing key, when the process has it)

func init() {
	register("export", "write an evidence bundle of the notices the selectors match, for an auditor to verify offline", runExport)
}

// exportTimeout bounds one export.
const exportTimeout = 30 * time.Minute

// logPublicKey returns the log's public key for evidence bundles: PECARCHIVE_LOG_PUBLIC_KEY_FILE,
// PECARCHIVE_LOG_PUBLIC_KEY, else the key of the signing key when this process has one; "" when
// there is none (exports are then refused, the rest of the query service works).
func (s settings) logPublicKey() (string, error) {
	key := s.get("PECARCHIVE_LOG_PUBLIC_KEY", "")
	if f := s.get("PECARCHIVE_LOG_PUBLIC_KEY_FILE", ""); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		key = string(b)
	}
	if key = strings.TrimSpace(key); key != "" {
		if _, err := tlog.NewVerifier(key); err != nil {
			return "", fmt.Errorf("PECARCHIVE_LOG_PUBLIC_KEY: %w", err)
		}
		return key, nil
	}
	skey, err := s.logKey()
	if err != nil {
		return "", nil
	}
	return tlog.VerifierKey(skey)
}

// selectorFlags are the selector flags of prove and export.
type selectorFlags struct {
	msgid, pecID, sender, recipient, since, until *string
}

func addSelectorFlags(fs *flag.FlagSet) selectorFlags {
	return selectorFlags{
		msgid:     fs.String("msgid", "", "the Message-ID of the notice"),
		pecID:     fs.String("pec-id", "", "the PEC id (identificativo) of the notice"),
		sender:    fs.String("sender", "", "every notice of this sender (with --recipient, --since, --until)"),
		recipient: fs.String("recipient", "", "only notices to this recipient (with --sender)"),
		since:     fs.String("since", "", "only notices sent at or after this time (RFC 3339)"),
		until:     fs.String("until", "", "only notices sent before this time (RFC 3339)"),
	}
}

// selector returns the selector the flags give, nil when none is set.
func (f selectorFlags) selector() (*querypb.Selector, error) {
	var sel *querypb.Selector
	n := 0
	if *f.msgid != "" {
		sel, n = &querypb.Selector{Selector: &querypb.Selector_Msgid{Msgid: *f.msgid}}, n+1
	}
	if *f.pecID != "" {
		sel, n = &querypb.Selector{Selector: &querypb.Selector_PecId{PecId: *f.pecID}}, n+1
	}
	if *f.sender != "" {
		p := &querypb.Parties{Sender: *f.sender, Recipient: *f.recipient}
		for _, tv := range []struct {
			flag, v string
			dst     **timestamppb.Timestamp
		}{{"--since", *f.since, &p.Since}, {"--until", *f.until, &p.Until}} {
			if tv.v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339, tv.v)
			if err != nil {
				return nil, fmt.Errorf("%s %q is not an RFC 3339 time", tv.flag, tv.v)
			}
			*tv.dst = timestamppb.New(t)
		}
		sel, n = &querypb.Selector{Selector: &querypb.Selector_Parties{Parties: p}}, n+1
	} else if *f.recipient != "" || *f.since != "" || *f.until != "" {
		return nil, errors.New("--recipient, --since and --until go with --sender")
	}
	if n > 1 {
		return nil, errors.New("give only one of --msgid, --pec-id, --sender")
	}
	return sel, nil
}

// maxSelectorsFile bounds a --selectors file.
const maxSelectorsFile = 1 << 20

// readSelectors reads a --selectors file: one selector per line in the flags of prove
// ("--msgid ID", "--sender ADDR --since T --until T"); blank lines and lines starting with #
// are skipped.
func readSelectors(path string) ([]*querypb.Selector, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*querypb.Selector
	sc := bufio.NewScanner(io.LimitReader(f, maxSelectorsFile+1))
	read := 0
	for n := 1; sc.Scan(); n++ {
		read += len(sc.Bytes()) + 1
		if read > maxSelectorsFile {
			return nil, fmt.Errorf("%s: over %d bytes", path, maxSelectorsFile)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lfs := flag.NewFlagSet("selector", flag.ContinueOnError)
		lfs.SetOutput(io.Discard)
		sf := addSelectorFlags(lfs)
		if err := lfs.Parse(strings.Fields(line)); err != nil || lfs.NArg() > 0 {
			return nil, fmt.Errorf("%s:%d: not a selector (%q)", path, n, line)
		}
		sel, err := sf.selector()
		if err == nil && sel == nil {
			err = errors.New("no selector")
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		out = append(out, sel)
	}
	return out, sc.Err()
}

func runExport(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("export", flag.ContinueOnError)
	fset.SetOutput(stderr)
	config := fset.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	out := fset.String("out", "", "the bundle to write (a ZIP; it must not exist)")
	selFile := fset.String("selectors", "", "a file of selectors, one per line (\"--msgid ID\", \"--sender ADDR --since T\"), for a batch in one bundle")
	var cite multiFlag
	fset.Var(&cite, "checkpoint", "an earlier signed checkpoint of the log you hold: the bundle proves its checkpoint extends it (repeatable)")
	sf := addSelectorFlags(fset)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: pecarchive export [--config FILE] --out BUNDLE.zip (--msgid ID | --pec-id ID | --sender ADDR [--recipient ADDR] [--since RFC3339] [--until RFC3339] | --selectors FILE) [--checkpoint FILE]...")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return exitUsage
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "pecarchive export: %s\n", msg)
		fset.Usage()
		return exitUsage
	}
	if fset.NArg() > 0 {
		return usageErr("unexpected arguments: " + strings.Join(fset.Args(), " "))
	}
	if *out == "" {
		return usageErr("--out is required")
	}
	req := &querypb.ExportEvidenceBundleRequest{}
	sel, err := sf.selector()
	if err != nil {
		return usageErr(err.Error())
	}
	if sel != nil {
		req.Selectors = append(req.Selectors, sel)
	}
	if *selFile != "" {
		sels, err := readSelectors(*selFile)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive export: %v\n", err)
			return exitUsage
		}
		req.Selectors = append(req.Selectors, sels...)
	}
	if len(req.Selectors) == 0 {
		return usageErr("give a selector (--msgid, --pec-id, --sender) or --selectors FILE")
	}
	for _, c := range cite {
		b, err := readSmallFile(c, tlog.MaxCheckpointSize)
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive export: %v\n", err)
			return exitUsage
		}
		req.Cite = append(req.Cite, b)
	}
	if _, err := os.Lstat(*out); err == nil || !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "pecarchive export: %s exists (or cannot be checked): not overwritten\n", *out)
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive export: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	size, sum, err := s.exportFile(ctx, req, *out)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive export: %s\n", describeStatus(err))
		switch status.Code(err) {
		case codes.InvalidArgument:
			return exitUsage
		case codes.NotFound:
			return exitNoMatch
		}
		var pe *fs.PathError
		var le *os.LinkError
		if errors.As(err, &pe) || errors.As(err, &le) {
			return exitUsage
		}
		return exitNotValid
	}
	fmt.Fprintf(stdout, "export: %s: %d bytes, sha256 %s; check it with: pecarchive verify-bundle %s --log-key LOG-PUBLIC-KEY\n",
		*out, size, hex.EncodeToString(sum), *out)
	return exitOK
}

// exportFile writes the bundle req asks for to the file out, through a temporary file beside
// it named out only once complete (placeNew), and returns its size and SHA-256.
func (s settings) exportFile(ctx context.Context, req *querypb.ExportEvidenceBundleRequest, out string) (int64, []byte, error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".partial-*")
	if err != nil {
		return 0, nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, sum), 1<<20)
	size, err := s.export(ctx, req, bw, sum)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = placeNew(tmp.Name(), out)
	}
	if err != nil {
		return 0, nil, err
	}
	return size, sum.Sum(nil), nil
}

// placeNew gives the complete file tmp the name out, never replacing a file of that name, even
// one created while the export ran: a hard link fails when out exists. On a filesystem without
// hard links it renames after checking that out is still absent (a window remains there). tmp
// keeps its own name too; the caller removes it.
func placeNew(tmp, out string) error {
	err := os.Link(tmp, out)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	if _, lerr := os.Lstat(out); !errors.Is(lerr, fs.ErrNotExist) {
		return &os.LinkError{Op: "place", Old: tmp, New: out, Err: fs.ErrExist}
	}
	return os.Rename(tmp, out)
}

// export writes the bundle req asks for to w: from the query service at PECARCHIVE_QUERY_ADDR
// (checking the stream's closing SHA-256 against sum, which w feeds), or in-process as the local
// user, after publishing a checkpoint of the log as it is so that every message is proven. It
// returns the bundle's size.
func (s settings) export(ctx context.Context, req *querypb.ExportEvidenceBundleRequest, w io.Writer, sum hash.Hash) (int64, error) {
	if addr := s.get("PECARCHIVE_QUERY_ADDR", ""); addr != "" {
		conn, client, err := s.dialQuery(addr)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		return receiveBundle(ctx, client, req, w, sum)
	}
	loc, closeLocal, err := s.openLocal(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer closeLocal()
	if _, err := loc.Archive.Publish(ctx); err != nil {
		return 0, err
	}
	key, err := s.logPublicKey()
	if err != nil {
		return 0, err
	}
	svc, err := query.New(ctx, query.Config{Reader: loc.Reader, Recorder: loc.Archive, LogKey: key})
	if err != nil {
		return 0, err
	}
	er := query.ExportRequest{Cite: req.GetCite()}
	for _, ps := range req.GetSelectors() {
		er.Selectors = append(er.Selectors, query.SelectorFromProto(ps))
	}
	cw := &countingWriter{w: w}
	me := query.Caller{Name: localUser(), Auth: "local"}
	if err := svc.Export(ctx, me, querypb.EvidenceService_ExportEvidenceBundle_FullMethodName, er, cw); err != nil {
		return 0, localStatus(err)
	}
	return cw.n, nil
}

// localStatus sorts an in-process error as the gRPC handlers would, so that the exit status and
// the message are the same either way.
func localStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return query.StatusError(context.Background(), "export evidence bundle", err)
}

// receiveBundle reads an ExportEvidenceBundle stream into w, and checks its closing response.
func receiveBundle(ctx context.Context, client querypb.EvidenceServiceClient, req *querypb.ExportEvidenceBundleRequest, w io.Writer, sum hash.Hash) (int64, error) {
	stream, err := client.ExportEvidenceBundle(ctx, req)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return 0, errors.New("the service ended the bundle early: it is incomplete, ask again")
		}
		if err != nil {
			return 0, err
		}
		if c := resp.GetChunk(); len(c) > 0 {
			if _, err := w.Write(c); err != nil {
				return 0, err
			}
			n += int64(len(c))
		}
		if want := resp.GetSha256(); len(want) > 0 {
			if f, ok := w.(interface{ Flush() error }); ok {
				if err := f.Flush(); err != nil {
					return 0, err
				}
			}
			if resp.GetSize() != n || hex.EncodeToString(sum.Sum(nil)) != hex.EncodeToString(want) {
				return 0, errors.New("the bundle received differs from the one the service sent (size or SHA-256): ask again")
			}
			return n, nil
		}
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
