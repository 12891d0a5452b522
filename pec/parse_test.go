package pec

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/pecarchive/pecarchive/internal/samples"
)

const arubaEnvelope = "real/aruba-busta-trasporto-2023-08-18.eml"

func mustParse(t *testing.T, raw []byte) *Message {
	t.Helper()
	m, err := Parse(raw, nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if m == nil {
		t.Fatal("Parse returned nil message")
	}
	return m
}

func hasProblem(m *Message, target error) bool {
	for _, p := range m.Problems {
		if errors.Is(p, target) {
			return true
		}
	}
	return false
}

func problemList(m *Message) string {
	var s []string
	for _, p := range m.Problems {
		s = append(s, p.Error())
	}
	return strings.Join(s, "\n")
}

func checkProblemsTyped(t *testing.T, m *Message) {
	t.Helper()
	for _, p := range m.Problems {
		var pe *ParseError
		if !errors.As(p, &pe) {
			t.Errorf("problem %v is not a *ParseError", p)
		}
	}
}

func TestRealArubaEnvelope(t *testing.T) {
	raw := samples.Read(t, arubaEnvelope)
	m := mustParse(t, raw)
	if len(m.Problems) != 0 {
		t.Errorf("problems:\n%s", problemList(m))
	}
	if m.Kind != KindPostaCertificata {
		t.Errorf("Kind = %q", m.Kind)
	}
	if m.ReceiptType() != ReceiptCompleta {
		t.Errorf("ReceiptType = %q", m.ReceiptType())
	}
	d := m.Daticert
	if d == nil {
		t.Fatal("no daticert")
	}
	want := &Daticert{
		Tipo:             KindPostaCertificata,
		Errore:           ErrNessuno,
		Mittente:         "sviluppo@pec.datamanagementitalia.it",
		Destinatari:      []Recipient{{"sviluppo@pec.datamanagementitalia.it", RecipientCertificato}},
		Risposte:         "sviluppo@pec.datamanagementitalia.it",
		Oggetto:          "[XDCR] xdcr_2022_02_00583.txt",
		GestoreEmittente: "ARUBA PEC S.p.A.",
		Identificativo:   "opec21010.20230818173714.75133.134.1.56@pec.aruba.it",
		MsgID:            "RZLFE1$D00882600B2330420CAE7B3643F81CDD@pec.datamanagementitalia.it",
		Ricevuta:         ReceiptCompleta,
	}
	wantTime, _ := time.Parse(time.RFC3339, "2023-08-18T17:37:14+02:00")
	if !d.Data.Equal(wantTime) {
		t.Errorf("Data = %v, want %v", d.Data, wantTime)
	}
	if _, off := d.Data.Zone(); off != 7200 {
		t.Errorf("Data zone offset = %d, want 7200", off)
	}
	if got := d.Data.Format(time.RFC3339); got != "2023-08-18T17:37:14+02:00" {
		t.Errorf("Data RFC3339 = %s", got)
	}
	got := *d
	got.Data = time.Time{}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("daticert =\n%+v\nwant\n%+v", got, *want)
	}

	h := m.Headers
	if h.MessageID != "opec21010.20230818173714.75133.134.1.56@pec.aruba.it" {
		t.Errorf("MessageID = %q", h.MessageID)
	}
	if h.From != "posta-certificata@pec.aruba.it" || h.FromName != "Per conto di: sviluppo@pec.datamanagementitalia.it" {
		t.Errorf("From = %q %q", h.FromName, h.From)
	}
	if !reflect.DeepEqual(h.To, []string{"sviluppo@pec.datamanagementitalia.it"}) || h.Cc != nil {
		t.Errorf("To = %q, Cc = %q", h.To, h.Cc)
	}
	if h.Subject != "POSTA CERTIFICATA: [XDCR] xdcr_2022_02_00583.txt" {
		t.Errorf("Subject = %q", h.Subject)
	}
	if h.XTrasporto != "posta-certificata" || h.XTipoRicevuta != "completa" || h.XRicevuta != "" {
		t.Errorf("X- headers = %+v", h)
	}
	if h.XRiferimentoMessageID != "RZLFE1$D00882600B2330420CAE7B3643F81CDD@pec.datamanagementitalia.it" {
		t.Errorf("XRiferimentoMessageID = %q", h.XRiferimentoMessageID)
	}
	if !h.Date.Equal(time.Date(2023, 8, 18, 15, 37, 14, 0, time.UTC)) {
		t.Errorf("Date = %v", h.Date)
	}

	sig := m.Signature
	if sig == nil {
		t.Fatal("no signature")
	}
	if sig.Form != SignatureDetached || sig.Micalg != "sha1" || sig.Protocol != "application/x-pkcs7-signature" {
		t.Errorf("signature = %s %s %s", sig.Form, sig.Micalg, sig.Protocol)
	}
	if !bytes.HasPrefix(sig.Content, []byte("Content-Type: multipart/mixed")) {
		t.Errorf("signed content starts %q", clip(sig.Content, 60))
	}
	if !bytes.HasSuffix(sig.Content, []byte("------------=_1692373034-75133-538--\n")) {
		t.Errorf("signed content ends %q", sig.Content[len(sig.Content)-60:])
	}
	if !isSubslice(raw, sig.Content) {
		t.Error("signed content does not alias the raw input")
	}
	// The CMS blob is the DER of a SignedData ContentInfo, 6673 bytes.
	if len(sig.CMS) != 6673 || sig.CMS[0] != 0x30 {
		t.Errorf("CMS: %d bytes, starts %x", len(sig.CMS), sig.CMS[:4])
	}
	if _, err := encapsulatedContent(sig.CMS, 64); err != nil {
		t.Errorf("CMS does not read as SignedData: %v", err)
	}

	if !bytes.HasPrefix(m.Postacert, []byte("Received: from smtps.pec.aruba.it")) ||
		!bytes.HasSuffix(m.Postacert, []byte("--_=__=_XaM3_.1692373033.2A.801863.42.21128.52.42.007.1335517473--\n\n")) {
		t.Errorf("postacert = %q ... %q", clip(m.Postacert, 40), m.Postacert[max(0, len(m.Postacert)-80):])
	}
	if !isSubslice(raw, m.Postacert) {
		t.Error("7bit postacert does not alias the raw input")
	}
	if !bytes.Contains(m.DaticertRaw, []byte(`<postacert tipo="posta-certificata" errore="nessuno">`)) {
		t.Errorf("DaticertRaw = %q", clip(m.DaticertRaw, 80))
	}
	if want := samples.Read(t, "daticert/aruba_posta-certificata_2023-08-18.xml"); !bytes.Equal(m.DaticertRaw, want) {
		t.Errorf("DaticertRaw differs from daticert/aruba_posta-certificata_2023-08-18.xml")
	}
	if len(m.HashParts) != 0 {
		t.Errorf("HashParts = %v", m.HashParts)
	}
}

// isSubslice reports whether inner lies within outer's memory.
func isSubslice(outer, inner []byte) bool {
	if len(inner) == 0 {
		return true
	}
	if len(outer) == 0 {
		return false
	}
	o := uintptr(unsafe.Pointer(unsafe.SliceData(outer)))
	i := uintptr(unsafe.Pointer(unsafe.SliceData(inner)))
	return i >= o && i+uintptr(len(inner)) <= o+uintptr(len(outer))
}

func TestAnonymisedSamples(t *testing.T) {
	cases := []struct {
		file     string
		kind     Kind
		from     string
		subject  string
		ident    string
		msgid    string
		ricevuta ReceiptType
		errore   ErrorCode
		consegna string
		esteso   string
		micalg   string
		postacrt bool
		problems []error // each must be present; nothing else but these
	}{
		{file: "anonymised/accettazione.eml", kind: KindAccettazione, from: "posta-certificata@fakepec.it",
			subject: "ACCETTAZIONE: Test PEC", ident: "opec210312.20241115182038.288127.606.1.53@fakepec.it",
			msgid: "SN05IE$951DEC16C1CFD3E4FD8FF1B1D24A99AE@fakepec.it", errore: ErrNessuno, micalg: "sha1",
			problems: []error{ErrEncoding}}, // truncated signature blob
		{file: "anonymised/consegna.eml", kind: KindErroreConsegna, from: "posta-certificata@fakepec.it",
			subject: "AVVISO DI MANCATA CONSEGNA: Test PEC", ident: "opec210312.20241115182038.288127.606.1.53@fakepec.it",
			msgid: "SN05IE$951DEC16C1CFD3E4FD8FF1B1D24A99AE@fakepec.it", errore: ErrNoDest,
			consegna: "rec@fakepec.it", esteso: "5.1.1 - FAKE Pec S.p.A. - indirizzo non valido", micalg: "sha1",
			problems: []error{ErrEncoding, ErrDaticert}}, // stray "a" after </risposte>
		{file: "anonymised/email_2.eml", kind: KindAvvenutaConsegna, from: "no-reply@example.com",
			subject: "CONSEGNA: HVQQWBNRWGHAFVPBSKAPGQAWCWSWTLMDBNFKGHCGRTYIUTUJATPVANVYLKOOWWECM",
			ident:   "CZPXCJRZKQDRVYXFAZYUIAWNACDAAHEVAEXAKN@example.com", msgid: "CZPXCJRZKQDRVYXFAZYUIAWNACDAAHEVAEXAKN@example.com",
			ricevuta: ReceiptCompleta, errore: ErrNessuno, consegna: "example.example.com", micalg: "sha-256", postacrt: true,
			problems: []error{ErrEncoding}},
		{file: "anonymised/email_3.eml", kind: KindPostaCertificata, from: "no-reply@example.com",
			subject: "POSTA CERTIFICATA: POSTA CERTIFICATA: EXAMPLE", ident: "CZPXCJRZKQDRVYXFAZYUIAWNACDAAHEVAEXAKN@example.com",
			msgid: "CZPXCJRZKQDRVYXFAZYUIAWNACDAAHEVAEXAKN@example.com", ricevuta: ReceiptCompleta, errore: ErrNessuno,
			micalg: "sha-256", postacrt: true,
			problems: []error{ErrEncoding, ErrTruncated}}, // its postacert.eml was cut short
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.file), func(t *testing.T) {
			raw := samples.Read(t, c.file)
			m := mustParse(t, raw)
			checkProblemsTyped(t, m)
			if m.Kind != c.kind {
				t.Errorf("Kind = %q, want %q", m.Kind, c.kind)
			}
			for _, p := range c.problems {
				if !hasProblem(m, p) {
					t.Errorf("missing problem %v; got:\n%s", p, problemList(m))
				}
			}
			for _, p := range m.Problems {
				ok := false
				for _, w := range c.problems {
					ok = ok || errors.Is(p, w)
				}
				if !ok {
					t.Errorf("unexpected problem %v", p)
				}
			}
			if m.Headers.From != c.from || m.Headers.Subject != c.subject {
				t.Errorf("From %q Subject %q", m.Headers.From, m.Headers.Subject)
			}
			d := m.Daticert
			if d == nil {
				t.Fatal("no daticert")
			}
			if d.Tipo != c.kind || d.Identificativo != c.ident || d.MsgID != c.msgid || d.Ricevuta != c.ricevuta ||
				d.Errore != c.errore || d.Consegna != c.consegna || d.ErroreEsteso != c.esteso {
				t.Errorf("daticert = %+v", d)
			}
			if d.Mittente == "" || len(d.Destinatari) != 1 || d.Destinatari[0].Type != RecipientCertificato || d.Data.IsZero() {
				t.Errorf("daticert = %+v", d)
			}
			if c.file == "anonymised/consegna.eml" && (d.Risposte != "sender@fakepec.it" || d.Oggetto != "Test PEC") {
				t.Errorf("fields around the stray character: risposte %q oggetto %q", d.Risposte, d.Oggetto)
			}
			if m.Signature == nil || m.Signature.Micalg != c.micalg || len(m.Signature.CMS) == 0 ||
				!bytes.HasPrefix(m.Signature.Content, []byte("Content-Type: multipart/mixed")) {
				t.Errorf("signature = %+v", m.Signature)
			}
			if (m.Postacert != nil) != c.postacrt {
				t.Errorf("postacert present = %v", m.Postacert != nil)
			}
		})
	}
}

func TestDaticertSamples(t *testing.T) {
	files := samples.Glob(t, "daticert/*.xml")
	if len(files) == 0 {
		t.Skip("no daticert samples")
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b := samples.Read(t, filepath.Join("daticert", name))
			d, probs := ParseDaticert(b, nil)
			if d == nil {
				t.Fatalf("nil daticert: %v", probs)
			}
			if !strings.Contains(name, string(d.Tipo)) && !(d.Tipo == KindErroreConsegna && strings.Contains(name, "errore-consegna")) {
				t.Errorf("tipo %q for %s", d.Tipo, name)
			}
			wantProblems := 0
			if strings.Contains(name, "errore-consegna") {
				wantProblems = 1 // the stray "a"
			}
			if len(probs) != wantProblems {
				t.Errorf("problems: %v", probs)
			}
			if d.Identificativo == "" || d.Data.IsZero() || d.GestoreEmittente == "" || d.MsgID == "" {
				t.Errorf("daticert = %+v", d)
			}
			// The reference path (encoding/xml) agrees with the fast path.
			ref, refProbs := parseDaticertReference(b)
			if !reflect.DeepEqual(d, ref) || len(refProbs) != len(probs) {
				t.Errorf("reference parse differs:\n%+v %v\n%+v %v", d, probs, ref, refProbs)
			}
		})
	}
}

// parseDaticertReference parses with the encoding/xml path only.
func parseDaticertReference(b []byte) (*Daticert, []error) {
	bd := &dcBuilder{lim: (&Options{}).limits()}
	bd.reset()
	decodeXML(b, bd)
	return bd.result()
}

// summary is what must not depend on line ends.
type summary struct {
	Kind      Kind
	Headers   Headers
	Daticert  *Daticert
	Content   string // canonicalised
	CMS       []byte
	Micalg    string
	Postacert string // canonicalised
	Hash      []HashPart
	Problems  []string
}

func summarize(m *Message) summary {
	s := summary{Kind: m.Kind, Headers: m.Headers, Daticert: m.Daticert, Hash: m.HashParts,
		Postacert: string(Canonicalize(m.Postacert))}
	if m.Signature != nil {
		s.Content = string(Canonicalize(m.Signature.Content))
		s.CMS = m.Signature.CMS
		s.Micalg = m.Signature.Micalg
	}
	for _, p := range m.Problems {
		s.Problems = append(s.Problems, p.Error())
	}
	return s
}

func toLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

func allMessages(t *testing.T) map[string][]byte {
	msgs := map[string][]byte{
		"synthetic-completa": typicalReceipt(),
		"synthetic-breve": synth{kind: KindAvvenutaConsegna, ricevuta: ReceiptBreve, postacert: brevePostacert,
			extra: "        <consegna>dest@pec.example.it</consegna>\n"}.build(),
		"synthetic-envelope": synth{kind: KindPostaCertificata, ricevuta: ReceiptCompleta, datB64: true,
			postacert: postacertWithPDF(300), pcB64: true, subject: "POSTA CERTIFICATA: Prova"}.build(),
		"synthetic-presa": synth{kind: KindPresaInCarico, extra: "        <ricezione>a@pec.example.it</ricezione>\n        <ricezione>b@pec.example.it</ricezione>\n"}.build(),
	}
	if samples.Dir() != "" {
		for _, f := range append(samples.Glob(t, "real/*.eml"), samples.Glob(t, "anonymised/*.eml")...) {
			rel, _ := filepath.Rel(samples.Dir(), f)
			msgs[rel] = samples.Read(t, rel)
		}
	}
	return msgs
}

func TestLineEndings(t *testing.T) {
	for name, raw := range allMessages(t) {
		t.Run(name, func(t *testing.T) {
			lf := mustParse(t, toLF(raw))
			crlf := mustParse(t, Canonicalize(raw))
			a, b := summarize(lf), summarize(crlf)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("LF and CRLF parses differ:\nLF:   %+v\nCRLF: %+v", a, b)
			}
			if lf.Kind == KindNotPEC {
				t.Errorf("kind not-pec")
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	for name, raw := range allMessages(t) {
		t.Run(name, func(t *testing.T) {
			full := mustParse(t, raw)
			if full.Signature == nil {
				t.Fatal("unsigned sample")
			}
			// Everything before the top-level close delimiter is incomplete.
			bnd, _ := param(mustTopParams(raw), "boundary")
			complete := bytes.LastIndex(raw, append(append([]byte("--"), bnd...), '-', '-'))
			if complete < 0 {
				complete = len(raw) // email_3 style: never closed
			}
			step := max(1, len(raw)/700)
			for n := 0; n < len(raw); n += step {
				m, err := Parse(raw[:n], nil)
				if err != nil || m == nil {
					t.Fatalf("prefix %d: %v", n, err)
				}
				checkProblemsTyped(t, m)
				if n < complete && len(m.Problems) == 0 && m.Kind != KindNotPEC {
					t.Errorf("prefix %d of %d: PEC kind %q without problems", n, len(raw), m.Kind)
				}
				if m.Signature != nil && !isSubslice(raw[:n], m.Signature.Content) {
					t.Errorf("prefix %d: signed content outside the input", n)
				}
			}
		})
	}
}

func mustTopParams(raw []byte) []byte {
	w := newWalker((&Options{}).limits(), &Message{})
	e := w.readEntity(raw, 0, len(raw), nil)
	return e.ctParams
}

func TestTooLarge(t *testing.T) {
	raw := typicalReceipt()
	m, err := Parse(raw, &Options{Limits: Limits{MaxSize: len(raw) - 1}})
	if !errors.Is(err, ErrTooLarge) || m == nil || !hasProblem(m, ErrTooLarge) {
		t.Fatalf("err = %v, m = %v", err, m)
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Errorf("error %T is not a *ParseError", err)
	}
	if _, err := Parse(raw, &Options{Limits: Limits{MaxSize: len(raw)}}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	// Daticert larger than MaxXMLSize.
	m = mustParseOpts(t, raw, &Options{Limits: Limits{MaxXMLSize: 100}})
	if !hasProblem(m, ErrTooLarge) || m.Daticert != nil || m.Kind != KindAvvenutaConsegna {
		t.Errorf("MaxXMLSize: kind %q problems:\n%s", m.Kind, problemList(m))
	}
}

func mustParseOpts(t *testing.T, raw []byte, o *Options) *Message {
	t.Helper()
	m, err := Parse(raw, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func nestedMultipart(depth int) []byte {
	var b strings.Builder
	b.WriteString("From: a@example.com\nContent-Type: multipart/mixed; boundary=\"b0\"\n\n")
	for i := 1; i <= depth; i++ {
		b.WriteString("--b" + itoa(i-1) + "\nContent-Type: multipart/mixed; boundary=\"b" + itoa(i) + "\"\n\n")
	}
	b.WriteString("--b" + itoa(depth) + "\nContent-Type: text/plain\n\nhello\n--b" + itoa(depth) + "--\n")
	for i := depth; i >= 1; i-- {
		b.WriteString("--b" + itoa(i-1) + "--\n")
	}
	return []byte(b.String())
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestTooDeep(t *testing.T) {
	m := mustParse(t, nestedMultipart(10))
	if hasProblem(m, ErrTooDeep) || len(m.Problems) != 0 {
		t.Errorf("depth 10: %s", problemList(m))
	}
	m = mustParse(t, nestedMultipart(200))
	if !hasProblem(m, ErrTooDeep) {
		t.Errorf("depth 200: %s", problemList(m))
	}
	m = mustParseOpts(t, nestedMultipart(10), &Options{Limits: Limits{MaxDepth: 5}})
	if !hasProblem(m, ErrTooDeep) {
		t.Errorf("depth 10, limit 5: %s", problemList(m))
	}
	// Deep XML.
	x := `<postacert tipo="accettazione">` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</postacert>`
	_, probs := ParseDaticert([]byte(x), nil)
	if !errorsContain(probs, ErrTooDeep) {
		t.Errorf("deep XML: %v", probs)
	}
}

func errorsContain(errs []error, target error) bool {
	for _, e := range errs {
		if errors.Is(e, target) {
			return true
		}
	}
	return false
}

const entityBomb = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<postacert tipo="accettazione" errore="nessuno"><intestazione><mittente>&lol3;</mittente></intestazione></postacert>
`

func TestXMLForbidden(t *testing.T) {
	for _, x := range []string{
		entityBomb,
		`<!DOCTYPE postacert SYSTEM "file:///etc/passwd"><postacert tipo="accettazione"/>`,
		`<postacert tipo="accettazione"><!ENTITY x "y"></postacert>`,
	} {
		d, probs := ParseDaticert([]byte(x), nil)
		if !errorsContain(probs, ErrXMLForbidden) {
			t.Errorf("%.40q: problems %v", x, probs)
		}
		if d != nil && strings.Contains(d.Mittente, "lol") {
			t.Errorf("entity expanded: %q", d.Mittente)
		}
	}
	// Inside a message.
	raw := bytes.Replace(synth{kind: KindAccettazione}.build(), []byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
		[]byte(entityBomb[:strings.Index(entityBomb, "<postacert")]), 1)
	m := mustParse(t, raw)
	if !hasProblem(m, ErrXMLForbidden) {
		t.Errorf("message with DTD: %s", problemList(m))
	}
	if m.Kind != KindAccettazione {
		t.Errorf("kind %q, want the header kind", m.Kind)
	}
}

func TestISO88591Subject(t *testing.T) {
	raw := []byte("From: =?iso-8859-1?Q?Universit=E0?= <Info@Example.IT>\r\n" +
		"To: \"Rossi, Mario\" <mario@example.it>, undisclosed-recipients:;, team: a@b.it, (comment) c@d.it;\r\n" +
		"Subject: =?iso-8859-1?Q?Perch=E9_=E8_cos=EC?= =?ISO-8859-1?B?IOA=?=\r\n" +
		"Date: Mon, 5 Feb 2024 09:08:07 +0100 (CET)\r\n" +
		"Message-ID: <abc@example.it>\r\n\r\nbody\r\n")
	m := mustParse(t, raw)
	if m.Kind != KindNotPEC || len(m.Problems) != 0 {
		t.Errorf("kind %q problems %s", m.Kind, problemList(m))
	}
	h := m.Headers
	if h.Subject != "Perché è così à" {
		t.Errorf("Subject = %q", h.Subject)
	}
	if h.FromName != "Università" || h.From != "Info@example.it" {
		t.Errorf("From = %q %q", h.FromName, h.From)
	}
	if want := []string{"mario@example.it", "a@b.it", "c@d.it"}; !reflect.DeepEqual(h.To, want) {
		t.Errorf("To = %q, want %q", h.To, want)
	}
	if !h.Date.Equal(time.Date(2024, 2, 5, 8, 8, 7, 0, time.UTC)) || h.MessageID != "abc@example.it" {
		t.Errorf("Date %v MessageID %q", h.Date, h.MessageID)
	}
	// Windows-1252 goes through go-message/charset.
	m = mustParse(t, []byte("Subject: =?windows-1252?Q?=93quoted=94?=\n\n"))
	if m.Headers.Subject != "\u201cquoted\u201d" {
		t.Errorf("windows-1252 Subject = %q", m.Headers.Subject)
	}
}

func TestCanonicalize(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"", ""}, {"a", "a"}, {"\n", "\r\n"}, {"a\nb\n", "a\r\nb\r\n"}, {"a\r\nb\n", "a\r\nb\r\n"},
		{"\r\n\r\n", "\r\n\r\n"}, {"\r\r\n\n", "\r\r\n\r\n"}, {"a\rb", "a\rb"},
	} {
		if got := Canonicalize([]byte(c.in)); string(got) != c.out {
			t.Errorf("Canonicalize(%q) = %q, want %q", c.in, got, c.out)
		}
	}
	crlf := Canonicalize(typicalReceipt())
	if &Canonicalize(crlf)[0] != &crlf[0] {
		t.Error("canonical input was copied")
	}
	if n := testing.AllocsPerRun(10, func() { Canonicalize(crlf) }); n != 0 {
		t.Errorf("%v allocations for canonical input", n)
	}
}

func TestParseAllocs(t *testing.T) {
	raw := typicalReceipt()
	n := testing.AllocsPerRun(20, func() { Parse(raw, nil) })
	if n > 40 {
		t.Errorf("%v allocations for a typical receipt", n)
	}
}
