package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/pecarchive/pecarchive/services/ingest"
	"github.com/pecarchive/pecarchive/services/ingest/mailfile"
)

func init() {
	register("import", "archive .eml files, folders, mbox files and Maildir folders byte-exact through the archive's Store", runImport)
}

// Defaults of import.
const (
	importConcurrency = 16        // Store calls in flight: the archive commits them together
	importBudget      = 256 << 20 // bytes of messages in flight (one larger message still passes)
	importAttempts    = 4         // Store attempts of a message while the archive is unavailable
	importBackoff     = time.Second
)

// importResult is one line of `pecarchive import --json` (the contract's fields, then valid and
// trusted, the archive's verdict on the signature).
type importResult struct {
	Path      string `json:"path"`
	Index     int    `json:"index"`
	SHA256    string `json:"sha256"`
	New       bool   `json:"new"`
	LeafIndex uint64 `json:"leaf_index"`
	Kind      string `json:"kind"`
	Error     string `json:"error"`
	Valid     bool   `json:"valid"`
	Trusted   bool   `json:"trusted"`

	outcome importOutcome
	message bool  // about a message (not a path that could not be read as mail)
	size    int64 // bytes of input it accounts for (progress)
}

type importOutcome int

const (
	importStored  importOutcome = iota // new in the archive
	importAlready                      // the archive held it already
	importRefused                      // refused: by the archive, or too large, empty, a loop, a device
	importFailed                       // not stored: unreadable, or the archive failed
	importSkipped                      // a file in a folder that is not mail
)

// importSummary is the last line of `pecarchive import --json`: the counts of the summary line,
// then files skipped as not mail and errors (unreadable paths, messages the archive could not
// take).
type importSummary struct {
	Files    int `json:"files"`
	Messages int `json:"messages"`
	New      int `json:"new"`
	Already  int `json:"already_archived"`
	Refused  int `json:"refused"`
	Skipped  int `json:"skipped"`
	Errors   int `json:"errors"`
}

func runImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	asJSON := fs.Bool("json", false, "print one JSON object per message, then the summary object")
	conc := fs.Int("concurrency", importConcurrency, "messages stored at once")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pecarchive import [--config FILE] [--json] PATH...")
		fmt.Fprintln(stderr, "PATH: .eml files, folders of them (recursive), mbox files, Maildir folders")
		fs.PrintDefaults()
	}
	paths, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(paths) == 0 || *conc <= 0 {
		fs.Usage()
		return exitUsage
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive import: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	arc, closeArc, err := s.openArchiver(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive import: %v\n", err)
		return exitUsage
	}
	defer closeArc()
	imp := &importer{arc: arc, concurrency: *conc, budget: importBudget, json: *asJSON, stdout: stdout, stderr: stderr}
	if isTerminal(stderr) {
		imp.progress = newProgressBar(stderr)
	}
	sum, err := imp.run(ctx, paths)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.Encode(sum)
	} else {
		fmt.Fprintf(stdout, "import: %d files, %d messages, %d new, %d already archived, %d refused\n",
			sum.Files, sum.Messages, sum.New, sum.Already, sum.Refused)
	}
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "pecarchive import: %v\n", err)
		return exitUsage
	case sum.Errors > 0:
		fmt.Fprintf(stderr, "pecarchive import: %d paths or messages could not be read\n", sum.Errors)
		return exitUsage
	case sum.Refused > 0:
		return exitNotValid
	}
	return exitOK
}

// importer stores the messages of files through an Archiver, several at once, with a bound on
// the bytes held.
type importer struct {
	arc         ingest.Archiver
	concurrency int
	budget      int64
	attempts    int           // Store attempts while the archive is unavailable (default importAttempts)
	backoff     time.Duration // the pause before the first retry, doubled after each (default importBackoff)
	opts        mailfile.Options
	json        bool
	stdout      io.Writer
	stderr      io.Writer
	progress    *progressBar
}

type importJob struct {
	msg mailfile.Message
	src string
}

// run reads paths and stores every message. It returns the counts and, when the import had to
// stop (the archive failed, or ctx ended), why; what was stored until then stays stored, and
// running the same import again reports it as already archived.
func (im *importer) run(ctx context.Context, paths []string) (importSummary, error) {
	// Reading stops at the first failure of the archive; Store calls in flight run to their end
	// unless ctx ends.
	readCtx, stopReading := context.WithCancelCause(ctx)
	defer stopReading(nil)
	results := make(chan importResult, im.concurrency)
	var sum importSummary
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		im.report(results, &sum)
	}()
	if im.progress != nil {
		files, size := mailfile.Size(ctx, paths, &im.opts)
		im.progress.setTotal(files, size)
	}

	jobs := make(chan importJob)
	budget := semaphore.NewWeighted(im.budget)
	var workers sync.WaitGroup
	for range im.concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range jobs {
				if readCtx.Err() != nil {
					// The import stopped after this message was read: it is reported, not stored.
					budget.Release(min(int64(len(j.msg.Raw)), im.budget))
					results <- notStored(j.msg)
					continue
				}
				r, fatal := im.store(ctx, j)
				budget.Release(min(int64(len(j.msg.Raw)), im.budget))
				if fatal != nil {
					stopReading(fatal)
				}
				results <- r
			}
		}()
	}
	files := 0
	for msg, err := range mailfile.Read(readCtx, paths, &im.opts) {
		if msg.Format != "" && msg.Index == 0 {
			files++
		}
		if err != nil {
			if readCtx.Err() != nil && errors.Is(err, readCtx.Err()) {
				break
			}
			results <- readProblem(msg, err)
			continue
		}
		if err := budget.Acquire(readCtx, min(int64(len(msg.Raw)), im.budget)); err != nil {
			results <- notStored(msg)
			break
		}
		src := msg.Path
		if abs, err := filepath.Abs(src); err == nil {
			src = abs
		}
		if msg.Format == mailfile.FormatMbox {
			src += "#" + strconv.Itoa(msg.Index)
		}
		select {
		case jobs <- importJob{msg: msg, src: src}:
		case <-readCtx.Done():
			budget.Release(min(int64(len(msg.Raw)), im.budget))
			results <- notStored(msg)
		}
	}
	close(jobs)
	workers.Wait()
	close(results)
	<-reported
	sum.Files = files
	switch {
	case ctx.Err() != nil:
		return sum, errors.New("interrupted (run the same import again to go on: what was stored is reported as already archived)")
	case context.Cause(readCtx) != nil:
		return sum, context.Cause(readCtx)
	}
	return sum, nil
}

// notStored is the result for a message read after the import stopped.
func notStored(msg mailfile.Message) importResult {
	return importResult{Path: msg.Path, Index: msg.Index, Error: "not stored: the import stopped",
		outcome: importFailed, message: true, size: msg.Size}
}

// readProblem is the result for a path or message that could not be read or was refused before
// reaching the archive.
func readProblem(msg mailfile.Message, err error) importResult {
	r := importResult{Path: msg.Path, Index: msg.Index, Error: err.Error(), outcome: importFailed, size: msg.Size,
		message: msg.Format != ""}
	switch {
	case errors.Is(err, mailfile.ErrNotMail):
		r.outcome = importSkipped
	case mailfile.Refused(err):
		r.outcome = importRefused
	}
	if msg.Sum != ([32]byte{}) {
		r.SHA256 = hex.EncodeToString(msg.Sum[:])
	}
	return r
}

// store stores one message, retrying while the archive is unavailable. fatal is set when the
// archive failed for another reason than refusing this message: then the import stops.
func (im *importer) store(ctx context.Context, j importJob) (r importResult, fatal error) {
	r = importResult{Path: j.msg.Path, Index: j.msg.Index, size: j.msg.Size, message: true}
	var st ingest.Stored
	var err error
	backoff, attempts := cmp.Or(im.backoff, importBackoff), cmp.Or(im.attempts, importAttempts)
	for attempt := 1; ; attempt++ {
		st, err = im.arc.Store(ctx, j.msg.Raw, ingest.Source{Path: j.src})
		if err == nil || !errors.Is(err, ingest.ErrUnavailable) || attempt >= attempts || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
	}
	switch {
	case err == nil:
		r.SHA256 = hex.EncodeToString(st.SHA256[:])
		r.New, r.LeafIndex, r.Kind, r.Valid, r.Trusted = st.New, st.LeafIndex, st.Kind, st.Valid, st.Trusted
		r.outcome = importAlready
		if st.New {
			r.outcome = importStored
		}
		return r, nil
	case errors.Is(err, ingest.ErrRefused):
		sum := sha256.Sum256(j.msg.Raw)
		r.SHA256, r.Error, r.outcome = hex.EncodeToString(sum[:]), err.Error(), importRefused
		return r, nil
	}
	sum := sha256.Sum256(j.msg.Raw)
	r.SHA256, r.Error, r.outcome = hex.EncodeToString(sum[:]), "not stored: "+err.Error(), importFailed
	return r, fmt.Errorf("the archive failed, import stopped (run it again to go on: what was stored is reported as already archived): %w", err)
}

// report counts the results, prints them (JSON lines on stdout; problems on stderr) and keeps the
// progress bar up to date.
func (im *importer) report(results <-chan importResult, sum *importSummary) {
	enc := json.NewEncoder(im.stdout)
	enc.SetEscapeHTML(false)
	var tick <-chan time.Time
	if im.progress != nil {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		tick = t.C
		defer im.progress.clear()
	}
	for {
		select {
		case r, ok := <-results:
			if !ok {
				return
			}
			im.count(r, sum)
			if r.outcome != importSkipped && im.json {
				enc.Encode(r)
			}
			if r.Error != "" {
				im.progress.clear()
				what := "refused"
				switch r.outcome {
				case importSkipped:
					what = "skipped"
				case importFailed:
					what = "error"
				}
				fmt.Fprintf(im.stderr, "import: %s: %s\n", what, r.Error)
			}
		case <-tick:
			im.progress.draw(*sum)
		}
	}
}

func (im *importer) count(r importResult, sum *importSummary) {
	im.progress.add(r.size)
	if r.message {
		sum.Messages++
	}
	switch r.outcome {
	case importStored:
		sum.New++
	case importAlready:
		sum.Already++
	case importRefused:
		sum.Refused++
	case importFailed:
		sum.Errors++
	case importSkipped:
		sum.Skipped++
	}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
