package pec

import (
	"bytes"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEveryKind(t *testing.T) {
	for _, k := range Kinds {
		if k == KindAnomalia || k == KindNotPEC {
			continue
		}
		for _, crlf := range []bool{false, true} {
			s := synth{kind: k, crlf: crlf, datB64: crlf}
			switch k {
			case KindPostaCertificata:
				s.ricevuta = ReceiptCompleta
				s.postacert = postacertWithPDF(200)
			case KindAvvenutaConsegna:
				s.ricevuta = ReceiptSintetica
				s.extra = "        <consegna>dest@pec.example.it</consegna>\n"
			case KindErroreConsegna, KindPreavvisoErroreConsegna:
				s.errore = ErrAltro
				s.extra = "        <consegna>dest@pec.example.it</consegna>\n        <errore-esteso>5.1.1 - utente sconosciuto</errore-esteso>\n"
			}
			m := mustParse(t, s.build())
			if m.Kind != k || len(m.Problems) != 0 {
				t.Errorf("%s (crlf %v): kind %q, problems:\n%s", k, crlf, m.Kind, problemList(m))
				continue
			}
			d := m.Daticert
			want := time.Date(2024, 2, 5, 9, 8, 7, 0, time.FixedZone("", 3600))
			if !d.Data.Equal(want) || d.Data.Format(time.RFC3339) != "2024-02-05T09:08:07+01:00" {
				t.Errorf("%s: data %v", k, d.Data)
			}
			if d.Oggetto != "Prova & verifica" || d.MsgID != "orig-123@pec.example.it" ||
				!reflect.DeepEqual(d.Destinatari, []Recipient{{"dest@pec.example.it", RecipientCertificato}, {"altro@example.com", RecipientEsterno}}) {
				t.Errorf("%s: daticert %+v", k, d)
			}
			if k == KindErroreConsegna && (d.Errore != ErrAltro || d.ErroreEsteso != "5.1.1 - utente sconosciuto") {
				t.Errorf("errore: %+v", d)
			}
			if (m.Postacert != nil) != (k == KindPostaCertificata) {
				t.Errorf("%s: postacert %d bytes", k, len(m.Postacert))
			}
			if m.Headers.Cc == nil || m.Headers.Cc[1] != "due@pec.example.it" {
				t.Errorf("Cc = %q", m.Headers.Cc)
			}
		}
	}
}

func TestPresaInCaricoRicezione(t *testing.T) {
	m := mustParse(t, allMessages(t)["synthetic-presa"])
	if m.Kind != KindPresaInCarico || !reflect.DeepEqual(m.Daticert.Ricezione, []string{"a@pec.example.it", "b@pec.example.it"}) {
		t.Errorf("kind %q ricezione %q", m.Kind, m.Daticert.Ricezione)
	}
}

func TestBreveHashParts(t *testing.T) {
	m := mustParse(t, allMessages(t)["synthetic-breve"])
	if m.Kind != KindAvvenutaConsegna || m.ReceiptType() != ReceiptBreve || len(m.Problems) != 0 {
		t.Fatalf("kind %q type %q problems %s", m.Kind, m.ReceiptType(), problemList(m))
	}
	want := []HashPart{
		{Name: "documento.pdf", SHA1: "0123456789abcdef0123456789abcdef01234567"},
		{Name: "fattura n° 1.xml", SHA1: "89abcdef0123456789abcdef0123456789abcdef"},
	}
	if !reflect.DeepEqual(m.HashParts, want) {
		t.Errorf("HashParts = %+v", m.HashParts)
	}
	// A completa receipt's attachments are not hash parts, and postacert is not walked.
	m = mustParse(t, typicalReceipt())
	if len(m.HashParts) != 0 {
		t.Errorf("completa: HashParts = %+v", m.HashParts)
	}
	// A bad hash part is reported.
	raw := synth{kind: KindAvvenutaConsegna, ricevuta: ReceiptBreve,
		postacert: strings.Replace(brevePostacert, "0123456789ABCDEF", "not hex at all!!", 1)}.build()
	m = mustParse(t, raw)
	if len(m.HashParts) != 1 || !hasProblem(m, ErrMalformedMIME) {
		t.Errorf("bad hash: %+v %s", m.HashParts, problemList(m))
	}
}

func TestHashPartsOnlyInDeliveryReceipts(t *testing.T) {
	part := "--X\nContent-Type: text/plain; name=a.pdf.hash\n\n%s\n--X--\n"
	notPEC := "Content-Type: multipart/mixed; boundary=X\n\n" + fmt.Sprintf(part, "not a digest")
	m := mustParse(t, []byte(notPEC))
	if m.Kind != KindNotPEC || len(m.Problems) != 0 || m.HashParts != nil {
		t.Errorf("not-pec: %+v %s", m.HashParts, problemList(m))
	}
	// A breve receipt whose provider put the hash part in the receipt itself.
	raw := synth{kind: KindAvvenutaConsegna, ricevuta: ReceiptBreve}.build()
	raw = replacePart(raw, "------------=_1707120487-1-1--\n",
		"------------=_1707120487-1-1\nContent-Type: text/plain; name=\"a.pdf.hash\"\n\n"+strings.Repeat("ab", 20)+"\n------------=_1707120487-1-1--\n")
	m = mustParse(t, raw)
	if len(m.HashParts) != 1 || m.HashParts[0].Name != "a.pdf" || len(m.Problems) != 0 {
		t.Errorf("receipt-level hash part: %+v %s", m.HashParts, problemList(m))
	}
	// An envelope's original is not searched for hash parts.
	m = mustParse(t, synth{kind: KindPostaCertificata, ricevuta: ReceiptBreve, postacert: brevePostacert}.build())
	if m.HashParts != nil || len(m.Problems) != 0 {
		t.Errorf("envelope: %+v %s", m.HashParts, problemList(m))
	}
}

func TestPostacertBase64(t *testing.T) {
	pc := postacertWithPDF(300)
	m := mustParse(t, synth{kind: KindPostaCertificata, ricevuta: ReceiptCompleta, postacert: pc, pcB64: true}.build())
	if string(m.Postacert) != pc || len(m.Problems) != 0 {
		t.Errorf("postacert %d bytes (want %d), problems %s", len(m.Postacert), len(pc), problemList(m))
	}
}

// anomaly builds an anomaly envelope around inner (attached without a name, as received).
func anomaly(inner string) []byte {
	return []byte(`Subject: ANOMALIA MESSAGGIO: Ciao
From: "Per conto di: someone@example.com" <posta-certificata@pec.example.it>
To: dest@pec.example.it
X-Trasporto: errore
X-Riferimento-Message-ID: <xyz@example.com>
Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=OUT

--OUT
Content-Type: multipart/mixed; boundary=MIX

--MIX
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Anomalia nel messaggio =E8 stata rilevata.
--MIX
Content-Type: message/rfc822

` + inner + `
--MIX--
--OUT
Content-Type: application/pkcs7-signature; name=smime.p7s
Content-Transfer-Encoding: base64

MIIBAA==
--OUT--
`)
}

const plainMail = "From: someone@example.com\nTo: dest@pec.example.it\nSubject: Ciao\nMessage-ID: <xyz@example.com>\n\nciao\n"

func TestAnomalia(t *testing.T) {
	m := mustParse(t, anomaly(plainMail))
	if m.Kind != KindAnomalia || len(m.Problems) != 0 || m.Daticert != nil {
		t.Fatalf("kind %q problems %s", m.Kind, problemList(m))
	}
	if string(m.Postacert) != plainMail {
		t.Errorf("Postacert = %q", m.Postacert)
	}
	if m.Signature == nil || m.Signature.Micalg != "sha-256" || !bytes.Equal(m.Signature.CMS, []byte{0x30, 0x82, 0x01, 0x00}) {
		t.Errorf("signature %+v", m.Signature)
	}
	// A damaged PEC message inside an anomaly envelope: its daticert is not ours.
	inner := string(synth{kind: KindAccettazione}.build())
	m = mustParse(t, anomaly(inner))
	if m.Kind != KindAnomalia || m.Daticert != nil || len(m.Problems) != 0 {
		t.Errorf("kind %q daticert %v problems %s", m.Kind, m.Daticert, problemList(m))
	}
}

func TestNotPEC(t *testing.T) {
	m := mustParse(t, []byte(plainMail))
	if m.Kind != KindNotPEC || len(m.Problems) != 0 || m.Signature != nil {
		t.Errorf("plain: kind %q problems %s", m.Kind, problemList(m))
	}
	// A receipt forwarded as an attachment: the top level is reported as it is.
	receipt := string(synth{kind: KindAvvenutaConsegna, ricevuta: ReceiptCompleta, postacert: postacertWithPDF(100)}.build())
	fwd := "From: mario@example.it\nTo: avvocato@example.it\nSubject: Fwd: CONSEGNA: Prova\n" +
		"Content-Type: multipart/mixed; boundary=FWD\n\n--FWD\nContent-Type: text/plain\n\nVedi allegato.\n" +
		"--FWD\nContent-Type: message/rfc822; name=\"CONSEGNA: Prova.eml\"\n\n" + receipt + "\n--FWD--\n"
	m = mustParse(t, []byte(fwd))
	if m.Kind != KindNotPEC || len(m.Problems) != 0 || m.Daticert != nil || m.Postacert != nil || m.Signature != nil {
		t.Errorf("forwarded: kind %q problems %s", m.Kind, problemList(m))
	}
	// An unsigned multipart with a stray XML attachment that is not named daticert.xml.
	m = mustParse(t, []byte("Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: application/xml; name=fattura.xml\n\n<a/>\n--X--\n"))
	if m.Kind != KindNotPEC || len(m.Problems) != 0 {
		t.Errorf("xml attachment: kind %q problems %s", m.Kind, problemList(m))
	}
}

func TestClassificationProblems(t *testing.T) {
	cases := []struct {
		name string
		s    synth
		kind Kind
		want []error
	}{
		{"header disagrees", synth{kind: KindAvvenutaConsegna, header: "X-Ricevuta: accettazione"}, KindAvvenutaConsegna, []error{ErrInconsistent}},
		{"no PEC header", synth{kind: KindAccettazione, header: "-"}, KindAccettazione, []error{ErrInconsistent}},
		{"both headers", synth{kind: KindAccettazione, header: "X-Ricevuta: accettazione\nX-Trasporto: posta-certificata"}, KindAccettazione, []error{ErrInconsistent}},
		{"no daticert", synth{kind: KindAccettazione, noDat: true}, KindAccettazione, []error{ErrDaticertMissing}},
		{"no daticert envelope", synth{kind: KindPostaCertificata, ricevuta: ReceiptBreve, noDat: true}, KindPostaCertificata, []error{ErrDaticertMissing}},
		{"tiporicevuta disagrees", synth{kind: KindPostaCertificata, ricevuta: ReceiptBreve,
			header: "X-Trasporto: posta-certificata\nX-Tiporicevuta: completa"}, KindPostaCertificata, []error{ErrInconsistent}},
		{"unknown X-Ricevuta", synth{kind: KindAccettazione, header: "X-Ricevuta: boh"}, KindAccettazione, []error{ErrMalformedHeader, ErrInconsistent}},
		{"unknown X-Ricevuta no daticert", synth{kind: KindAccettazione, header: "X-Ricevuta: boh", noDat: true}, KindNotPEC, []error{ErrMalformedHeader}},
		{"unknown tipo", synth{kind: "mancata-consegna", header: "X-Ricevuta: errore-consegna"}, KindErroreConsegna, []error{ErrDaticert}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := mustParse(t, c.s.build())
			if m.Kind != c.kind {
				t.Errorf("kind %q, want %q", m.Kind, c.kind)
			}
			for _, w := range c.want {
				if !hasProblem(m, w) {
					t.Errorf("missing %v; got:\n%s", w, problemList(m))
				}
			}
			if len(m.Problems) != len(c.want) {
				t.Errorf("problems:\n%s", problemList(m))
			}
		})
	}
	// Aruba's header spelling.
	m := mustParse(t, synth{kind: KindPostaCertificata, ricevuta: ReceiptBreve, header: "x-TRASPORTO: Posta-Certificata\nX-Tiporicevuta: BREVE"}.build())
	if m.Kind != KindPostaCertificata || m.Headers.XTipoRicevuta != "breve" || len(m.Problems) != 0 {
		t.Errorf("case-insensitive headers: %q %q %s", m.Kind, m.Headers.XTipoRicevuta, problemList(m))
	}
	// PEC headers on an unsigned message.
	m = mustParse(t, []byte("X-Ricevuta: accettazione\nFrom: posta-certificata@pec.example.it\n\nciao\n"))
	if m.Kind != KindAccettazione || !hasProblem(m, ErrSignatureMissing) || !hasProblem(m, ErrDaticertMissing) {
		t.Errorf("unsigned: %q %s", m.Kind, problemList(m))
	}
}

func replacePart(raw []byte, old, new string) []byte {
	if !bytes.Contains(raw, []byte(old)) {
		panic("replacePart: " + old)
	}
	return bytes.Replace(raw, []byte(old), []byte(new), 1)
}

func TestDaticertVariants(t *testing.T) {
	base := synth{kind: KindAccettazione}.build()
	named := "Content-Type: application/xml; name=\"daticert.xml\"\nContent-Disposition: inline; filename=\"daticert.xml\"\n"
	cases := map[string][]byte{
		"unnamed application/xml": replacePart(base, named, "Content-Type: application/xml\n"),
		"certdata.xml":            replacePart(base, named, "Content-Type: application/octet-stream; name=CERTDATA.XML\n"),
		"filename only":           replacePart(base, named, "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename*=UTF-8''daticert.xml\n"),
	}
	for name, raw := range cases {
		m := mustParse(t, raw)
		if m.Kind != KindAccettazione || m.Daticert == nil || len(m.Problems) != 0 {
			t.Errorf("%s: kind %q problems %s", name, m.Kind, problemList(m))
		}
	}

	// Quoted-printable daticert in ISO-8859-1 with its declaration.
	latin := "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<postacert tipo=\"accettazione\" errore=\"nessuno\"><intestazione>" +
		"<mittente>a@pec.example.it</mittente><oggetto>Perch\xe9 =</oggetto></intestazione><dati><data zona=\"+0100\">" +
		"<giorno>05/02/2024</giorno><ora>09:08:07</ora></data><identificativo>id@x</identificativo></dati></postacert>\n"
	var qpb strings.Builder
	qw := quotedprintable.NewWriter(&qpb)
	qw.Write([]byte(latin))
	qw.Close()
	qp := qpb.String()
	raw := []byte("X-Ricevuta: accettazione\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha1; boundary=S\n\n" +
		"--S\nContent-Type: multipart/mixed; boundary=M\n\n--M\nContent-Type: text/plain\n\nx\n--M\n" +
		"Content-Type: application/xml; name=daticert.xml\nContent-Transfer-Encoding: quoted-printable\n\n" + qp +
		"--M--\n--S\nContent-Type: application/pkcs7-signature\n\nAAAA\n--S--\n")
	m := mustParse(t, raw)
	if m.Kind != KindAccettazione || len(m.Problems) != 0 || m.Daticert.Oggetto != "Perché =" || string(toLF(m.DaticertRaw)) != strings.TrimSuffix(latin, "\n") {
		t.Errorf("latin-1 QP daticert: %q %+v %s", m.DaticertRaw, m.Daticert, problemList(m))
	}
	// Without the declaration: read as ISO-8859-1, reported.
	d, probs := ParseDaticert([]byte(strings.Replace(latin, ` encoding="ISO-8859-1"`, "", 1)), nil)
	if d == nil || d.Oggetto != "Perché =" || !errorsContain(probs, ErrCharset) {
		t.Errorf("undeclared latin-1: %+v %v", d, probs)
	}
}

func TestDaticertFields(t *testing.T) {
	x := `<?xml version='1.0'?>
<!-- a comment sends this to encoding/xml -->
<postacert tipo=" avvenuta-consegna " errore="nessuno">
  <intestazione>
    <mittente> a@pec.example.it </mittente>
    <destinatari tipo="certificato">b@pec.example.it</destinatari>
    <risposte>a@pec.example.it</risposte>
    <oggetto><![CDATA[x < y]]> &#x41;&#66;</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>G</gestore-emittente>
    <data zona="-0330"><giorno>29/02/2024</giorno><ora>23:59:59</ora></data>
    <identificativo>id</identificativo>
    <msgid>&lt;m@x&gt;</msgid>
    <ricevuta tipo="breve"/>
    <consegna>b@pec.example.it</consegna>
    <sconosciuto>ignored<deeper/></sconosciuto>
  </dati>
</postacert>`
	d, probs := ParseDaticert([]byte(x), nil)
	if len(probs) != 0 {
		t.Fatal(probs)
	}
	if d.Tipo != KindAvvenutaConsegna || d.Mittente != "a@pec.example.it" || d.Oggetto != "x < y AB" || d.MsgID != "m@x" ||
		d.Ricevuta != ReceiptBreve || d.Consegna != "b@pec.example.it" {
		t.Errorf("%+v", d)
	}
	if got := d.Data.Format(time.RFC3339); got != "2024-02-29T23:59:59-03:30" {
		t.Errorf("data %s", got)
	}
	for _, bad := range []struct{ giorno, ora, zona string }{
		{"31/02/2024", "10:00:00", "+0100"}, {"2024-02-01", "10:00:00", "+0100"}, {"01/02/2024", "25:00:00", "+0100"},
		{"01/02/2024", "10:00:00", ""}, {"01/02/2024", "10:00:00", "CET"},
	} {
		doc := `<postacert tipo="accettazione"><dati><data zona="` + bad.zona + `"><giorno>` + bad.giorno +
			`</giorno><ora>` + bad.ora + `</ora></data></dati></postacert>`
		d, probs := ParseDaticert([]byte(doc), nil)
		if d == nil || !d.Data.IsZero() || !errorsContain(probs, ErrDaticert) {
			t.Errorf("%v: %+v %v", bad, d, probs)
		}
	}
	// Truncated and malformed documents keep what was read.
	d, probs = ParseDaticert([]byte(`<postacert tipo="accettazione"><intestazione><mittente>a@b</mittente><oggetto>x`), nil)
	if d == nil || d.Mittente != "a@b" || !errorsContain(probs, ErrDaticert) {
		t.Errorf("truncated: %+v %v", d, probs)
	}
	d, probs = ParseDaticert([]byte(`<postacert tipo="accettazione"><mittente>a@b</mittente><oggetto>x &bogus; y</oggetto></postacert>`), nil)
	if d == nil || d.Mittente != "a@b" || !errorsContain(probs, ErrDaticert) {
		t.Errorf("bad entity: %+v %v", d, probs)
	}
	if d, probs := ParseDaticert([]byte(`<html/>`), nil); d != nil || !errorsContain(probs, ErrDaticert) {
		t.Errorf("not postacert: %+v %v", d, probs)
	}
	if d, probs := ParseDaticert(nil, nil); d != nil || !errorsContain(probs, ErrDaticert) {
		t.Errorf("empty: %+v %v", d, probs)
	}
}

func TestMalformedMIME(t *testing.T) {
	cases := map[string]struct {
		raw  string
		want error
	}{
		"no boundary param":   {"Content-Type: multipart/mixed\n\nx\n", ErrMalformedMIME},
		"boundary not found":  {"Content-Type: multipart/mixed; boundary=zz\n\nx\n", ErrMalformedMIME},
		"not closed":          {"Content-Type: multipart/mixed; boundary=zz\n\n--zz\n\nx\n", ErrTruncated},
		"bad header line":     {"From: a@b\nthis is not a header\n\nbody", ErrMalformedHeader},
		"bad base64":          {"Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: application/xml; name=daticert.xml\nContent-Transfer-Encoding: base64\n\nPHBv*c3RhY2VydCB0aXBvPSJhY2NldHRhemlvbmUiLz4\n--zz--\n", ErrEncoding},
		"unknown encoding":    {"Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: application/xml; name=daticert.xml\nContent-Transfer-Encoding: x-uuencode\n\n<postacert tipo=\"accettazione\"/>\n--zz--\n", ErrEncoding},
		"signed without sig":  {"Content-Type: multipart/signed; boundary=zz\n\n--zz\n\nx\n--zz--\n", ErrSignatureMissing},
		"signed wrong type":   {"Content-Type: multipart/signed; boundary=zz\n\n--zz\n\nx\n--zz\nContent-Type: text/plain\n\ny\n--zz--\n", ErrSignatureMissing},
		"bad date":            {"Date: yesterday\n\n", ErrMalformedHeader},
		"bad encoded subject": {"Subject: =?x-unknown-charset?Q?abc?=\n\n", ErrCharset},
		"opaque garbage":      {"Content-Type: application/pkcs7-mime; smime-type=signed-data\nContent-Transfer-Encoding: base64\n\nAAAA\n", ErrMalformedSignature},
	}
	for name, c := range cases {
		m := mustParse(t, []byte(c.raw))
		checkProblemsTyped(t, m)
		if !hasProblem(m, c.want) {
			t.Errorf("%s: want %v, got:\n%s", name, c.want, problemList(m))
		}
	}
	// The lenient decoders still recover data.
	m := mustParse(t, []byte(cases["bad base64"].raw))
	if m.Daticert == nil || m.Kind != KindAccettazione {
		t.Errorf("lenient base64: %q %+v", m.DaticertRaw, m.Daticert)
	}
}

func TestLimits(t *testing.T) {
	raw := typicalReceipt()
	m := mustParseOpts(t, raw, &Options{Limits: Limits{MaxHeaders: 5}})
	if !hasProblem(m, ErrTooManyHeaders) {
		t.Errorf("MaxHeaders: %s", problemList(m))
	}
	m = mustParseOpts(t, raw, &Options{Limits: Limits{MaxParts: 3}})
	if !hasProblem(m, ErrTooManyParts) {
		t.Errorf("MaxParts: %s", problemList(m))
	}
	m = mustParseOpts(t, raw, &Options{Limits: Limits{MaxHeaderSize: 200}})
	if !hasProblem(m, ErrTooLarge) {
		t.Errorf("MaxHeaderSize: %s", problemList(m))
	}
	// Many parts: bounded work.
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=p\n\n")
	for range 20000 {
		b.WriteString("--p\n\nx\n")
	}
	start := time.Now()
	m = mustParse(t, []byte(b.String()))
	if !hasProblem(m, ErrTooManyParts) || time.Since(start) > 2*time.Second {
		t.Errorf("20000 parts: %v %s", time.Since(start), problemList(m)[:min(200, len(problemList(m)))])
	}
}

// cmsSignedData builds a minimal DER ContentInfo holding SignedData with content as eContent.
func cmsSignedData(t *testing.T, content []byte) []byte {
	type encap struct {
		Type    asn1.ObjectIdentifier
		Content []byte `asn1:"explicit,optional,tag:0"`
	}
	type signedData struct {
		Version    int
		Digests    asn1.RawValue
		Encap      encap
		SignerInfo asn1.RawValue
	}
	type contentInfo struct {
		Type    asn1.ObjectIdentifier
		Content signedData `asn1:"explicit,tag:0"`
	}
	emptySet := asn1.RawValue{Class: 0, Tag: 17, IsCompound: true}
	ci := contentInfo{
		Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2},
		Content: signedData{Version: 1, Digests: emptySet, SignerInfo: emptySet,
			Encap: encap{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}, Content: content}},
	}
	der, err := asn1.Marshal(ci)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestOpaque(t *testing.T) {
	env := synth{kind: KindAccettazione}.build()
	// the signed entity of the synthetic message becomes the encapsulated content
	m := mustParse(t, env)
	inner := Canonicalize(m.Signature.Content)
	der := cmsSignedData(t, inner)
	hdr := "X-Ricevuta: accettazione\r\nFrom: posta-certificata@pec.example.it\r\n" +
		"Content-Type: application/x-pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n"
	raw := []byte(hdr + wrap64(der) + "\r\n")
	m = mustParse(t, raw)
	if m.Kind != KindAccettazione || len(m.Problems) != 0 {
		t.Fatalf("kind %q problems %s", m.Kind, problemList(m))
	}
	sig := m.Signature
	if sig.Form != SignatureOpaque || sig.Content != nil || !bytes.Equal(sig.CMS, der) ||
		!bytes.Equal(sig.Encapsulated, inner) || sig.Protocol != "application/x-pkcs7-mime" {
		t.Errorf("signature %s %q %d", sig.Form, sig.Protocol, len(sig.Encapsulated))
	}
	if m.Daticert == nil || m.Daticert.Tipo != KindAccettazione {
		t.Errorf("daticert %+v", m.Daticert)
	}

	// BER: indefinite lengths and a segmented OCTET STRING.
	ber := berSignedData(inner)
	got, err := encapsulatedContent(ber, 64)
	if err != nil || !bytes.Equal(got, inner) {
		t.Errorf("BER: %v, %d bytes", err, len(got))
	}
	// Detached: no eContent.
	if got, err := encapsulatedContent(cmsSignedData(t, nil), 64); err != nil || got != nil {
		t.Errorf("detached: %v %q", err, got)
	}
	// Not SignedData.
	if _, err := encapsulatedContent([]byte{0x30, 0x03, 0x02, 0x01, 0x01}, 64); err == nil {
		t.Error("garbage accepted")
	}
}

// berSignedData hand-encodes ContentInfo/SignedData with indefinite lengths and eContent split
// into 100-byte OCTET STRING segments.
func berSignedData(content []byte) []byte {
	var seg []byte
	for len(content) > 0 {
		n := min(100, len(content))
		seg = append(seg, 0x04, byte(n))
		seg = append(seg, content[:n]...)
		content = content[n:]
	}
	indef := func(tag byte, parts ...[]byte) []byte {
		out := []byte{tag, 0x80}
		for _, p := range parts {
			out = append(out, p...)
		}
		return append(out, 0, 0)
	}
	oidSD := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}
	oidData := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01}
	econtent := indef(0xa0, indef(0x24, seg))
	encap := indef(0x30, oidData, econtent)
	sd := indef(0x30, []byte{0x02, 0x01, 0x01}, []byte{0x31, 0x00}, encap, []byte{0x31, 0x00})
	return indef(0x30, oidSD, indef(0xa0, sd))
}

func TestParseErrorFormat(t *testing.T) {
	e := &ParseError{Err: ErrDaticert, Part: "1.2", Detail: "x"}
	if e.Error() != "pec: malformed daticert.xml in 1.2: x" || !errors.Is(e, ErrDaticert) {
		t.Errorf("%v", e)
	}
	m := mustParse(t, []byte("Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: multipart/mixed\n\nx\n--zz--\n"))
	var pe *ParseError
	if len(m.Problems) != 1 || !errors.As(m.Problems[0], &pe) || pe.Part != "1" {
		t.Errorf("part path: %s", problemList(m))
	}
}

func TestNoPanicOnOddInput(t *testing.T) {
	odd := []string{
		"", "\n", "\r\n\r\n", ":", "From", "From \n", "A: b\n \n\n", " leading continuation\n\n",
		"Content-Type: multipart/signed; boundary=\"\"\n\n--\n",
		"Content-Type: multipart/signed; boundary=a\n\n--a\r",
		"Content-Type: multipart/signed; boundary=a\n\n--a--",
		"Content-Type: multipart/signed; boundary=a\n\n--a\n--a\n--a--\n",
		"Content-Type: multipart/mixed; boundary=\"a\\\"b\"\n\n--a\"b\n\nx\n--a\"b--\n",
		"Content-Type: multipart/mixed; boundary=----\n\n------\n\nx\n--------\n",
		"Content-Type: application/pkcs7-mime\n\n",
		"Content-Type: message/rfc822\n\nFrom: x\n\n",
		"Content-Type: multipart/mixed; boundary=a; boundary*0=b; name*=utf-8''%zz\n\n--a\n\n",
		"X-Ricevuta: avvenuta-consegna\nContent-Type: multipart/signed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822; name=postacert.eml\nContent-Transfer-Encoding: base64\n\n!!!!\n--b\nContent-Type: application/xml\n\n<postacert tipo='avvenuta-consegna'><dati><ricevuta tipo='breve'/></dati></postacert>\n--b--\n--a--\n",
	}
	for _, s := range odd {
		m, err := Parse([]byte(s), nil)
		if err != nil || m == nil {
			t.Errorf("%q: %v", s, err)
		}
		checkProblemsTyped(t, m)
	}
	_ = base64.StdEncoding
}
