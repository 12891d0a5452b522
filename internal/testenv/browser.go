package testenv

// Browser (this file): pages are rendered by a real headless Chromium (Debian's chromium,
// installed with poppler-utils by scripts/browser.sh), printed to PDF and read back with
// pdftotext, and artefacts (PDFs, screenshots) are kept under a git-ignored folder.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// browserTimeout bounds one Chromium run; generous for a loaded 2-core machine.
const browserTimeout = 3 * time.Minute

// Chromium returns the path of the Chromium binary, failing the test when there is none (run
// scripts/browser.sh).
func Chromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Fatal("testenv: chromium is not installed (run scripts/browser.sh, which installs chromium and poppler-utils)")
	return ""
}

// runChromium runs headless Chromium on the local file page with the given extra arguments, with
// a profile of its own and every host name unresolvable, so the page can load nothing from the
// network.
func runChromium(tb testing.TB, page string, args ...string) {
	tb.Helper()
	bin := Chromium(tb)
	abs, err := filepath.Abs(page)
	if err != nil {
		tb.Fatal(err)
	}
	base := []string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--mute-audio", "--hide-scrollbars",
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--user-data-dir=" + tb.TempDir(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), "file://"+abs)...)
	cmd.Env = append(os.Environ(), "HOME="+tb.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("testenv: chromium %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// PrintToPDF renders the HTML file page and prints it to the PDF file out, with no header or
// footer (the page's own print stylesheet decides the paper size).
func PrintToPDF(tb testing.TB, page, out string) {
	tb.Helper()
	runChromium(tb, page, "--no-pdf-header-footer", "--print-to-pdf="+out)
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		tb.Fatalf("testenv: chromium wrote no PDF to %s: %v", out, err)
	}
}

// Screenshot renders the HTML file page in a window of the given size and saves a PNG to out.
func Screenshot(tb testing.TB, page, out string, width, height int) {
	tb.Helper()
	runChromium(tb, page, "--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), "--screenshot="+out)
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		tb.Fatalf("testenv: chromium wrote no screenshot to %s: %v", out, err)
	}
}

// PDFText returns the text of a PDF as pdftotext extracts it (its default layout: reading order).
func PDFText(tb testing.TB, pdf string) string {
	tb.Helper()
	return poppler(tb, "pdftotext", pdf, "-")
}

// PDFInfo returns the fields pdfinfo prints about a PDF ("Pages", "Page size", ...).
func PDFInfo(tb testing.TB, pdf string) map[string]string {
	tb.Helper()
	info := map[string]string{}
	for _, line := range strings.Split(poppler(tb, "pdfinfo", pdf), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			info[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return info
}

func poppler(tb testing.TB, tool string, args ...string) string {
	tb.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		tb.Fatalf("testenv: %s is not installed (run scripts/browser.sh, which installs poppler-utils)", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, tool, args...).Output()
	if err != nil {
		tb.Fatalf("testenv: %s %s: %v", tool, strings.Join(args, " "), err)
	}
	return string(out)
}

// ArtifactDir returns a folder for test artefacts that outlive the test (screenshots, PDFs):
// $PECARCHIVE_ARTIFACTS/<name>, by default .artifacts/<name> at the repository root, which git
// ignores. It is created if needed.
func ArtifactDir(tb testing.TB, name string) string {
	tb.Helper()
	root := os.Getenv("PECARCHIVE_ARTIFACTS")
	if root == "" {
		dir, err := repoRoot()
		if err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		root = filepath.Join(dir, ".artifacts")
	}
	d := filepath.Join(root, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}
