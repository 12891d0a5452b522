package pectest

import (
	"bytes"
	"encoding/base64"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec"
)

// realSection returns the bytes of raw between the line "--"+boundary following after and the
// next line starting with "--"+boundary (the part, header and body, without the line break
// before the delimiter).
func realSection(t *testing.T, raw []byte, boundary string, n int) []byte {
	t.Helper()
	delim := []byte("\n--" + boundary)
	pos := 0
	for i := 0; i <= n; i++ {
		j := bytes.Index(raw[pos:], delim)
		if j < 0 {
			t.Fatalf("delimiter %d of %q not found", i, boundary)
		}
		pos += j + len(delim)
		pos += bytes.IndexByte(raw[pos:], '\n') + 1
	}
	end := bytes.Index(raw[pos:], delim)
	return raw[pos : pos+end]
}

func bodyOf(part []byte) []byte { return part[bytes.Index(part, []byte("\n\n"))+2:] }

// TestFidelityRealEnvelope rebuilds the signed entity of the real Aruba envelope from its
// ingredients (texts, daticert, the attached original, the boundaries) and requires the exact
// bytes: the layout, the quoted-printable line breaking, the daticert.xml layout and its base64
// line length all match a real provider.
func TestFidelityRealEnvelope(t *testing.T) {
	raw := samples.Read(t, "real/aruba-busta-trasporto-2023-08-18.eml")
	const (
		outer = "----B94FD2A89E86E94B7AE78E0A1C965325"
		mixed = "----------=_1692373034-75133-538"
		alt   = "----------=_1692373034-75133-539"
		id    = "opec21010.20230818173714.75133.134.1.56@pec.aruba.it"
		msgid = "RZLFE1$D00882600B2330420CAE7B3643F81CDD@pec.datamanagementitalia.it"
		who   = "sviluppo@pec.datamanagementitalia.it"
		subj  = "[XDCR] xdcr_2022_02_00583.txt"
	)
	at := time.Date(2023, 8, 18, 15, 37, 14, 0, time.UTC)
	realEntity := realSection(t, raw, outer, 0)

	// daticert.xml, byte for byte.
	realXML := realSection(t, realEntity, mixed, 1)
	xmlB64 := bodyOf(realXML)
	realDC, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(xmlB64), "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	d := &Daticert{Tipo: pec.KindPostaCertificata, Mittente: who,
		Destinatari: []pec.Recipient{{Address: who, Type: pec.RecipientCertificato}},
		Risposte:    who, Oggetto: subj, GestoreEmittente: "ARUBA PEC S.p.A.", Data: at,
		Identificativo: id, MsgID: msgid, Ricevuta: pec.ReceiptCompleta}
	if got := d.Marshal(); !bytes.Equal(got, realDC) {
		t.Fatalf("daticert differs:\n got %q\nwant %q", got, realDC)
	}
	if got := base64Lines(realDC, 60); !bytes.Equal(got, xmlB64) {
		t.Fatalf("daticert base64 layout differs")
	}

	// The texts (decoded) and their quoted-printable form.
	td := textData{day: "18/08/2023", clock: "17:37:14", zone: "+0200", subject: subj, from: who,
		recipients: []pec.Recipient{{Address: who, Type: pec.RecipientCertificato}}, id: id}
	plain, html := texts(pec.KindPostaCertificata, td)
	realAlt := realSection(t, realEntity, mixed, 0)
	for i, want := range []string{plain, html} {
		part := realSection(t, realAlt, alt, i)
		qp := bodyOf(part)
		dec, err := readAllQP(qp)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dec, latin1(want)) {
			t.Errorf("text %d differs:\n got %q\nwant %q", i, latin1(want), dec)
		}
		if got := quotedPrintable(latin1(want)); !bytes.Equal(got, qp) {
			t.Errorf("quoted-printable %d differs:\n got %q\nwant %q", i, got, qp)
		}
	}

	// The whole entity, given the attached original as the provider forwarded it.
	post := bodyOf(realSection(t, realEntity, mixed, 2))
	s := &spec{text: plain, html: html, daticert: realDC, attach: post[:len(post)-1]}
	if got := entityLF(mixed, alt, s); !bytes.Equal(got, realEntity) {
		t.Errorf("entity differs (got %d bytes, want %d)", len(got), len(realEntity))
	}
	// And the date formats.
	if got := rfc5322Date(at); got != "Fri, 18 Aug 2023 17:37:14 +0200" {
		t.Errorf("date %q", got)
	}
}

func readAllQP(b []byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := out.ReadFrom(quotedprintable.NewReader(bytes.NewReader(b)))
	return bytes.ReplaceAll(out.Bytes(), []byte("\r\n"), []byte("\n")), err
}
