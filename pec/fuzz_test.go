package pec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/samples"
)

// Fuzz targets. They are seeded from the shared samples when present and always from the
// synthetic messages and odd inputs of the tests, so they run anywhere.

func seedFiles(pattern string) [][]byte {
	d := samples.Dir()
	if d == "" {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(d, pattern))
	var out [][]byte
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// maxSeed caps seed sizes: the fuzzer minimises every new interesting input, which takes long
// for inputs of tens of kilobytes, so short runs would do little else.
const maxSeed = 3 << 10

func messageSeeds() [][]byte {
	var seeds [][]byte
	for _, s := range append(seedFiles("real/*.eml"), seedFiles("anonymised/*.eml")...) {
		seeds = append(seeds, s[:min(len(s), maxSeed)])
	}
	seeds = append(seeds,
		compactReceipt("avvenuta-consegna", "breve", "7bit", brevePostacert),
		compactReceipt("posta-certificata", "completa", "base64", plainMail),
		compactReceipt("errore-consegna", "", "7bit", ""),
		anomaly(plainMail),
		[]byte(plainMail),
		nestedMultipart(3),
		[]byte("Content-Type: application/pkcs7-mime\nContent-Transfer-Encoding: base64\n\n"+wrap64(berSignedData([]byte("Content-Type: text/plain\n\nhi\n")))+"\n"),
		[]byte("Content-Type: multipart/signed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/xml\n\n<postacert tipo='accettazione'/>\n--b--\n--a\nContent-Type: application/pkcs7-signature\n\nMA==\n--a--\n"),
	)
	return seeds
}

// compactReceipt is a small PEC message (about 1 KB) of the given kind, so that the fuzzer's
// minimisation stays quick.
func compactReceipt(tipo, ricevuta, pcEncoding, postacert string) []byte {
	hdr := "X-Ricevuta: " + tipo
	if tipo == "posta-certificata" {
		hdr = "X-Trasporto: posta-certificata\nX-TipoRicevuta: " + ricevuta
	}
	dat := `<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="` + tipo + `" errore="nessuno"><intestazione><mittente>a@pec.it</mittente>` +
		`<destinatari tipo="certificato">b@pec.it</destinatari><risposte>a@pec.it</risposte><oggetto>Prova</oggetto>` +
		`</intestazione><dati><gestore-emittente>G</gestore-emittente><data zona="+0100"><giorno>05/02/2024</giorno>` +
		`<ora>09:08:07</ora></data><identificativo>id@pec.it</identificativo><msgid>&lt;m@pec.it&gt;</msgid>` +
		`<ricevuta tipo="` + ricevuta + `"/><consegna>b@pec.it</consegna></dati></postacert>`
	var b strings.Builder
	b.WriteString("Subject: =?iso-8859-1?Q?CONSEGNA:_Perch=E9?=\nFrom: posta-certificata@pec.it\nTo: a@pec.it\n" +
		"Date: Mon, 5 Feb 2024 09:08:07 +0100\nMessage-ID: <id@pec.it>\nX-Riferimento-Message-ID: <m@pec.it>\n" + hdr + "\n" +
		"Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=sha1; boundary=\"--S\"\n\n" +
		"----S\nContent-Type: multipart/mixed; boundary=\"--M\"\n\n----M\nContent-Type: text/plain; charset=iso-8859-1\n" +
		"Content-Transfer-Encoding: quoted-printable\n\nConsegnato =E8.\n----M\nContent-Type: application/xml; name=daticert.xml\n\n" +
		dat + "\n")
	if postacert != "" {
		b.WriteString("----M\nContent-Type: message/rfc822; name=postacert.eml\nContent-Transfer-Encoding: " + pcEncoding + "\n\n")
		if pcEncoding == "base64" {
			b.WriteString(wrap64([]byte(postacert)) + "\n")
		} else {
			b.WriteString(postacert + "\n")
		}
	}
	b.WriteString("----M--\n----S\nContent-Type: application/x-pkcs7-signature; name=smime.p7s\nContent-Transfer-Encoding: base64\n\nMIIBAA==\n----S--\n")
	return []byte(b.String())
}

func FuzzParse(f *testing.F) {
	for _, s := range messageSeeds() {
		f.Add(s)
	}
	lim := Limits{MaxSize: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		m, err := Parse(data, &Options{Limits: lim})
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Parse took %v for %d bytes", d, len(data))
		}
		if m == nil {
			t.Fatal("nil message")
		}
		if err != nil {
			if !errors.Is(err, ErrTooLarge) || len(data) <= lim.MaxSize {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		known := false
		for _, k := range Kinds {
			known = known || m.Kind == k
		}
		if !known {
			t.Errorf("kind %q", m.Kind)
		}
		for _, p := range m.Problems {
			var pe *ParseError
			if !errors.As(p, &pe) || pe.Err == nil {
				t.Errorf("problem %v is not a *ParseError with a sentinel", p)
			}
		}
		if sig := m.Signature; sig != nil && sig.Form == SignatureDetached && !isSubslice(data, sig.Content) {
			t.Error("signed content is not a sub-slice of the input")
		}
		if sig := m.Signature; sig != nil && sig.Form == SignatureOpaque && sig.Content != nil {
			t.Error("opaque signature with Content")
		}
		if m.Kind == KindNotPEC && m.Postacert != nil {
			t.Error("postacert on a non-PEC message")
		}
		if m.Daticert != nil && m.DaticertRaw == nil {
			t.Error("daticert without its bytes")
		}
		for _, h := range m.HashParts {
			if len(h.SHA1) != 40 {
				t.Errorf("hash part %+v", h)
			}
		}
		// Canonicalize is idempotent and leaves no bare LF.
		c := Canonicalize(data)
		if !bytes.Equal(Canonicalize(c), c) {
			t.Error("Canonicalize not idempotent")
		}
		if bytes.Count(c, []byte("\n")) != bytes.Count(c, []byte("\r\n")) {
			t.Error("bare LF after Canonicalize")
		}
	})
}

func FuzzDaticert(f *testing.F) {
	for _, s := range seedFiles("daticert/*.xml") {
		f.Add(s)
	}
	for _, k := range Kinds {
		if m, _ := Parse(synth{kind: k, ricevuta: ReceiptBreve}.build(), nil); m.DaticertRaw != nil {
			f.Add(m.DaticertRaw)
		}
	}
	f.Add([]byte(entityBomb))
	f.Add([]byte(`<postacert tipo="accettazione"><intestazione><mittente>a&amp;b&lt;c</mittente></intestazione>x</postacert>`))
	f.Add([]byte("<?xml version='1.0' encoding='ISO-8859-1'?><postacert tipo='accettazione'><oggetto>caf\xe9</oggetto></postacert>"))
	f.Add([]byte("<postacert tipo=\"a\"\r\n errore='b'><data zona='+0200'><giorno>01/01/2024</giorno><ora>10:00</ora></data></postacert>"))
	lim := Limits{}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, probs := parseDaticert(data, lim)
		for _, p := range probs {
			var pe *ParseError
			if !errors.As(p, &pe) {
				t.Errorf("problem %v is not a *ParseError", p)
			}
		}
		if d != nil && d.Errore == "" {
			t.Error("errore not defaulted")
		}
		// Differential check: whenever the fast scanner accepts a document, encoding/xml must
		// read it the same way.
		full := (&Options{Limits: lim}).limits()
		b, pre := prepareDaticert(data, full)
		if b == nil {
			return
		}
		fast := &dcBuilder{lim: full, probs: pre}
		fast.reset()
		if !scanXML(b, fast) {
			return
		}
		fd, fp := fast.result()
		ref := &dcBuilder{lim: full, probs: append([]error(nil), pre...)}
		ref.reset()
		decodeXML(b, ref)
		rd, rp := ref.result()
		if !reflect.DeepEqual(fd, rd) || !reflect.DeepEqual(problemStrings(fp), problemStrings(rp)) {
			t.Errorf("fast and encoding/xml paths differ on %q:\nfast %+v %v\nref  %+v %v", b, fd, fp, rd, rp)
		}
	})
}

func problemStrings(errs []error) []string {
	var s []string
	for _, e := range errs {
		s = append(s, e.Error())
	}
	return s
}

func FuzzMIMEWalk(f *testing.F) {
	for _, s := range messageSeeds() {
		f.Add(s)
	}
	lim := (&Options{Limits: Limits{MaxSize: 1 << 20, MaxParts: 500}}).limits()
	f.Fuzz(func(t *testing.T, data []byte) {
		n := 0
		visit := func(e entity, depth int) {
			n++
			if e.start < 0 || e.start > e.bodyStart || e.bodyStart > e.end || e.end > len(e.buf) {
				t.Fatalf("entity range %d %d %d in %d bytes", e.start, e.bodyStart, e.end, len(e.buf))
			}
			if depth > lim.MaxDepth+1 {
				t.Fatalf("depth %d beyond the limit", depth)
			}
			if !isSubslice(e.buf, e.ctype) || !isSubslice(e.buf, e.ctParams) {
				if e.ctype != nil && len(e.ctype) > 0 {
					t.Fatalf("content type %q does not alias the buffer", e.ctype)
				}
			}
		}
		m, _ := parse(data, lim, visit)
		if n > 2*lim.MaxParts+10 {
			t.Errorf("%d entities visited, MaxParts %d", n, lim.MaxParts)
		}
		if m == nil {
			t.Fatal("nil message")
		}
	})
}

func TestCompactSeeds(t *testing.T) {
	for _, c := range []struct {
		raw    []byte
		kind   Kind
		hashes int
	}{
		{compactReceipt("avvenuta-consegna", "breve", "7bit", brevePostacert), KindAvvenutaConsegna, 2},
		{compactReceipt("posta-certificata", "completa", "base64", plainMail), KindPostaCertificata, 0},
		{compactReceipt("errore-consegna", "", "7bit", ""), KindErroreConsegna, 0},
	} {
		m := mustParse(t, c.raw)
		if m.Kind != c.kind || len(m.HashParts) != c.hashes || len(m.Problems) != 0 || m.Headers.Subject != "CONSEGNA: Perché" {
			t.Errorf("%s: kind %q hashes %d subject %q problems %s", c.kind, m.Kind, len(m.HashParts), m.Headers.Subject, problemList(m))
		}
	}
}
