package evidence_test

import (
	"bytes"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// reportOf returns report.html of the fixture bundle.
func reportOf(t *testing.T) (string, *fixture) {
	f := getFixture(t)
	es := unzip(t, f.bundle)
	return string(es[find(es, evidence.NameReport)].Data), f
}

// The report loads nothing and runs nothing, and everything from mail is escaped.
func TestReportSelfContained(t *testing.T) {
	html, f := reportOf(t)
	for _, bad := range []string{"<script", "src=", "href=", "url(", "@import", "http://", "https://", "<link", "<iframe", "<object", "<img"} {
		if strings.Contains(strings.ToLower(html), bad) {
			t.Errorf("report.html contains %q", bad)
		}
	}
	// The subject of the fixture is hostile: it must appear escaped, never as markup.
	if !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(html, "&lt;b&gt;&amp;amp;") {
		t.Errorf("the hostile subject is not escaped as expected")
	}
	// Italian first, then English, in every bilingual pair of headings.
	it, en := strings.Index(html, "Esito per destinatario"), strings.Index(html, "Outcome per recipient")
	if it < 0 || en < 0 || it > en {
		t.Errorf("Italian does not come first")
	}
	for _, fl := range f.manifest.Files {
		if fl.Name != evidence.NameReport && !strings.Contains(html, fl.SHA256) {
			t.Errorf("report.html lacks the SHA-256 of %s", fl.Name)
		}
	}
	// One inline SVG timeline per recipient.
	if n, want := strings.Count(html, `<svg class="timeline"`), len(f.delivery.Recipients); n != want {
		t.Errorf("%d timelines, want %d", n, want)
	}
	// The exact OpenSSL command of every signed message, with its signing time.
	for _, m := range f.manifest.Messages {
		if !m.Record.Signature.Present {
			continue
		}
		re := regexp.MustCompile(`openssl smime -verify -in ` + regexp.QuoteMeta(m.File) + ` -CAfile certs/anchors/[0-9a-f]{64}\.pem -certfile certs/chains/[0-9a-f]{64}\.pem -partial_chain -attime [0-9]+ -out /dev/null`)
		if !re.MatchString(html) {
			t.Errorf("no OpenSSL command for %s", m.File)
		}
	}
}

// The report rendered in a real headless Chromium, printed to A4 PDF: the PDF's text carries
// every verdict and every file's hash. The PDF and a screenshot are kept in .artifacts/evidence/.
func TestReportInChromium(t *testing.T) {
	html, f := reportOf(t)
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	art := testenv.ArtifactDir(t, "evidence")
	pdf := filepath.Join(art, "report.pdf")
	png := filepath.Join(art, "report.png")
	testenv.PrintToPDF(t, page, pdf)
	testenv.Screenshot(t, page, png, 1280, 1800)
	t.Logf("artefacts: %s, %s", pdf, png)

	info := testenv.PDFInfo(t, pdf)
	if !strings.Contains(info["Page size"], "(A4)") {
		t.Errorf("page size %q is not A4", info["Page size"])
	}
	// Lines wrap where the page ends them: compare with white space collapsed.
	text := strings.Join(strings.Fields(testenv.PDFText(t, pdf)), " ")
	for _, r := range f.delivery.Recipients {
		labels := map[string]string{evidence.VerdictDelivered: "CONSEGNATO", evidence.VerdictNotDelivered: "NON CONSEGNATO"}
		for _, want := range []string{r.Address, "(" + r.Verdict + ")", labels[r.Verdict]} {
			if !strings.Contains(text, want) {
				t.Errorf("the PDF lacks %q for %s", want, r.Address)
			}
		}
		// pdftotext joins a word broken at a hyphen at the end of a line: compare explanations
		// without hyphens or spaces.
		flat := strings.NewReplacer(" ", "", "-", "").Replace(text)
		for _, want := range []string{r.ExplanationIT, r.ExplanationEN} {
			if !strings.Contains(flat, strings.NewReplacer(" ", "", "-", "").Replace(want)) {
				t.Errorf("the PDF lacks %q for %s", want, r.Address)
			}
		}
	}
	for _, fl := range f.manifest.Files {
		if fl.Name != evidence.NameReport && !strings.Contains(text, fl.SHA256) {
			t.Errorf("the PDF lacks the SHA-256 of %s", fl.Name)
		}
	}
	for _, want := range []string{"<script>alert(1)</script>", "Dichiarazione di prova PEC", "PEC evidence statement", "pecarchive verify-bundle", "openssl dgst -sha256"} {
		if !strings.Contains(text, want) {
			t.Errorf("the PDF lacks %q", want)
		}
	}
}

// The OpenSSL commands the report gives, run as an auditor would in the extracted bundle: every
// fingerprint matches and every signature of a trusted message verifies as of its signing time.
// On the fixture and on the real Aruba envelope of 2023 (SHA-1, real AgID chain).
func TestReportOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is not installed (run scripts/browser.sh)")
	}
	f := getFixture(t)
	t.Run("fixture", func(t *testing.T) { checkOpenSSL(t, f.bundle, f.manifest) })
	t.Run("real envelope", func(t *testing.T) {
		raw := samples.Read(t, "real/aruba-busta-trasporto-2023-08-18.eml")
		a, err := evidencetest.New(smime.DefaultTrustStore())
		if err != nil {
			t.Fatal(err)
		}
		m := a.Add(t.Context(), raw, time.Date(2023, 8, 18, 15, 37, 30, 0, time.UTC), [32]byte{})
		if !m.Record.Signature.Trusted {
			t.Fatalf("the real envelope is not trusted as of its signing time: %v", m.Record.Signature.Reasons)
		}
		b, err := a.Bundle(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		man, err := evidence.Write(t.Context(), &buf, b, a)
		if err != nil {
			t.Fatal(err)
		}
		if res := verifyBytes(t, buf.Bytes(), a.VKey); !res.OK {
			t.Fatalf("the bundle does not verify:\n%s", failures(res))
		}
		checkOpenSSL(t, buf.Bytes(), man)
	})
}

var opensslLine = regexp.MustCompile(`(?m)^openssl smime -verify -in (messages/[0-9a-f]{64}\.eml) [^<\n]*-out /dev/null`)

func checkOpenSSL(t *testing.T, bundle []byte, m *evidence.Manifest) {
	dir := t.TempDir()
	es := unzip(t, bundle)
	for _, e := range es {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, e.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	report := html.UnescapeString(string(es[find(es, evidence.NameReport)].Data))
	dgst := regexp.MustCompile(`openssl dgst -sha256 [^<\n]*`).FindString(report)
	if dgst == "" {
		t.Fatal("the report gives no openssl dgst command")
	}
	cmd := exec.Command("sh", "-c", dgst)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, fl := range m.Files {
		if fl.Name != evidence.NameReport && !strings.Contains(string(out), "SHA2-256("+fl.Name+")= "+fl.SHA256) {
			t.Errorf("openssl dgst does not give %s for %s", fl.SHA256, fl.Name)
		}
	}
	trusted := map[string]bool{}
	for _, msg := range m.Messages {
		trusted[msg.File] = msg.Record.Signature.Trusted
	}
	n := 0
	for _, match := range opensslLine.FindAllStringSubmatch(report, -1) {
		cmd := exec.Command("sh", "-c", match[0])
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		ok := err == nil && strings.Contains(string(out), "Verification successful")
		if ok != trusted[match[1]] {
			t.Errorf("%s: trusted %v, openssl says:\n%s", match[0], trusted[match[1]], out)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the report gives no OpenSSL command")
	}
	t.Logf("%d OpenSSL verifications", n)
}
