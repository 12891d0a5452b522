package evidence_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/internal/testenv"
)

// reportOf returns report.html of the fixture bundle.
func reportOf(t *testing.T) (string, *fixture) {
	f := getFixture(t)
	es := unzip(t, f.bundle)
	return string(es[find(es, evidence.NameReport)].data), f
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
	text := testenv.PDFText(t, pdf)
	for _, r := range f.delivery.Recipients {
		labels := map[string]string{evidence.VerdictDelivered: "CONSEGNATO", evidence.VerdictNotDelivered: "NON CONSEGNATO"}
		for _, want := range []string{r.Address, "(" + r.Verdict + ")", labels[r.Verdict], r.ExplanationIT, r.ExplanationEN} {
			if !strings.Contains(text, want) {
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
