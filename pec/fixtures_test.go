package pec

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Synthetic PEC messages laid out like the real Aruba envelope, for tests that must not depend on
// the shared samples.

const testDaticertTmpl = `<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="%s" errore="%s">
    <intestazione>
        <mittente>mittente@pec.example.it</mittente>
        <destinatari tipo="certificato">dest@pec.example.it</destinatari>
        <destinatari tipo="esterno">altro@example.com</destinatari>
        <risposte>mittente@pec.example.it</risposte>
        <oggetto>Prova &amp; verifica</oggetto>
    </intestazione>
    <dati>
        <gestore-emittente>EXAMPLE PEC S.p.A.</gestore-emittente>
        <data zona="+0100">
            <giorno>05/02/2024</giorno>
            <ora>09:08:07</ora>
        </data>
        <identificativo>opec1.20240205090807.1.2.3@pec.example.it</identificativo>
        <msgid>&lt;orig-123@pec.example.it&gt;</msgid>
%s    </dati>
</postacert>
`

type synth struct {
	kind      Kind   // daticert tipo and header
	header    string // override the PEC header line ("" = derived from kind, "-" = none)
	ricevuta  ReceiptType
	errore    ErrorCode
	extra     string // extra <dati> children
	postacert string // body of postacert.eml ("" = none)
	pcB64     bool   // postacert.eml transfer-encoded base64
	datB64    bool   // daticert base64 (else 8bit)
	noDat     bool
	sigSize   int  // bytes of fake CMS (0 = 2600)
	crlf      bool // CRLF line ends
	subject   string
}

func (s synth) build() []byte {
	var b strings.Builder
	hdr := s.header
	if hdr == "" {
		switch s.kind {
		case KindPostaCertificata:
			hdr = "X-Trasporto: posta-certificata\nX-TipoRicevuta: " + string(s.ricevuta)
		case KindAnomalia:
			hdr = "X-Trasporto: errore"
		default:
			hdr = "X-Ricevuta: " + string(s.kind)
		}
	}
	subj := s.subject
	if subj == "" {
		subj = "CONSEGNA: Prova"
	}
	fmt.Fprintf(&b, `Return-Path: <posta-certificata@pec.example.it>
Received: from mx.pec.example.it (localhost [127.0.0.1])
	by mx.pec.example.it (Postfix) with ESMTP id 4RS5b95P8gz6vrq
	for <mittente@pec.example.it>; Mon, 05 Feb 2024 09:08:07 +0100 (CET)
Received: from smtps.pec.example.it (smtps.pec.example.it [192.0.2.1])
	by mx.pec.example.it (Postfix) with ESMTP id 4RS5b95KnBz6vrc
	for <mittente@pec.example.it>; Mon, 05 Feb 2024 09:08:07 +0100 (CET)
Subject: %s
X-Riferimento-Message-ID: <orig-123@pec.example.it>
Date: Mon, 05 Feb 2024 09:08:07 +0100
To: "Mittente" <mittente@pec.example.it>
Cc: uno@pec.example.it, "Due, Tre" <due@PEC.Example.IT>
`, subj)
	if hdr != "-" {
		b.WriteString(hdr + "\n")
	}
	b.WriteString(`From: posta-certificata@pec.example.it
MIME-Version: 1.0
Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; micalg="sha1"; boundary="----SIGNEDBOUNDARY0123456789"
Message-ID: <opec1.20240205090807.1.2.3@pec.example.it>

This is an S/MIME signed message

------SIGNEDBOUNDARY0123456789
Content-Type: multipart/mixed; boundary="----------=_1707120487-1-1"
Content-Transfer-Encoding: binary
MIME-Version: 1.0

------------=_1707120487-1-1
Content-Type: multipart/alternative;
 boundary="----------=_1707120487-1-2"
Content-Transfer-Encoding: binary

------------=_1707120487-1-2
Content-Type: text/plain; charset="iso-8859-1"
Content-Disposition: inline
Content-Transfer-Encoding: quoted-printable

-- Ricevuta di avvenuta consegna del messaggio indirizzato a dest@pec.exampl=
e.it ("posta certificata") --

Il giorno 05/02/2024 alle ore 09:08:07 (+0100) il messaggio con Oggetto
"Prova" inviato da "mittente@pec.example.it"
ed indirizzato a "dest@pec.example.it"
=E8 stato correttamente consegnato al destinatario.
Identificativo del messaggio: opec1.20240205090807.1.2.3@pec.example.it
L'allegato daticert.xml contiene informazioni di servizio sulla trasmissione

------------=_1707120487-1-2
Content-Type: text/html; charset="iso-8859-1"
Content-Disposition: inline
Content-Transfer-Encoding: quoted-printable

<html>
<head><title>Ricevuta di avvenuta consegna</title></head>
<body>
<h3>Ricevuta di avvenuta consegna</h3>
<hr><br>
Il giorno 05/02/2024 alle ore 09:08:07 (+0100) il messaggio<br>
&quot;Prova&quot; proveniente da &quot;mittente@pec.example.it&quot;<br>
ed indirizzato a &quot;dest@pec.example.it&quot;<br>
&egrave; stato correttamente consegnato al destinatario.<br>
Identificativo messaggio: opec1.20240205090807.1.2.3@pec.example.it<br>
</body>
</html>

------------=_1707120487-1-2--
`)
	if !s.noDat {
		extra := s.extra
		if s.ricevuta != "" {
			extra = `        <ricevuta tipo="` + string(s.ricevuta) + "\" />\n" + extra
		}
		errore := s.errore
		if errore == "" {
			errore = ErrNessuno
		}
		dat := fmt.Sprintf(testDaticertTmpl, s.kind, errore, extra)
		b.WriteString("\n------------=_1707120487-1-1\nContent-Type: application/xml; name=\"daticert.xml\"\nContent-Disposition: inline; filename=\"daticert.xml\"\n")
		if s.datB64 {
			b.WriteString("Content-Transfer-Encoding: base64\n\n" + wrap64([]byte(dat)) + "\n")
		} else {
			b.WriteString("Content-Transfer-Encoding: 8bit\n\n" + dat + "\n")
		}
	}
	if s.postacert != "" {
		b.WriteString("------------=_1707120487-1-1\nContent-Type: message/rfc822; name=\"postacert.eml\"\nContent-Disposition: inline; filename=\"postacert.eml\"\n")
		if s.pcB64 {
			b.WriteString("Content-Transfer-Encoding: base64\n\n" + wrap64([]byte(s.postacert)) + "\n")
		} else {
			b.WriteString("Content-Transfer-Encoding: 7bit\n\n" + s.postacert + "\n")
		}
	}
	b.WriteString("------------=_1707120487-1-1--\n\n------SIGNEDBOUNDARY0123456789\n" +
		"Content-Type: application/x-pkcs7-signature; name=\"smime.p7s\"\n" +
		"Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"smime.p7s\"\n\n")
	n := s.sigSize
	if n == 0 {
		n = 2600
	}
	b.WriteString(wrap64(fakeCMS(n)) + "\n------SIGNEDBOUNDARY0123456789--\n\n")
	out := []byte(b.String())
	if s.crlf {
		out = Canonicalize(out)
	}
	return out
}

// fakeCMS returns n deterministic bytes starting like a DER SEQUENCE.
func fakeCMS(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[0], b[1], b[2], b[3] = 0x30, 0x82, byte((n-4)>>8), byte(n-4)
	return b
}

func wrap64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	out.WriteString(s)
	return out.String()
}

const testPostacert = `Received: from webmail.pec.example.it (webmail [192.0.2.2])
	by smtp.pec.example.it (Postfix) with ESMTPSA id 4RS5bG5RV6zbcwH
	for <dest@pec.example.it>; Mon, 05 Feb 2024 09:08:06 +0100 (CET)
Date: Mon, 05 Feb 2024 09:08:06 +0100
Subject: Prova
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner-boundary"
From: "Mittente" <mittente@pec.example.it>
To: dest@pec.example.it
Message-ID: <orig-123@pec.example.it>

--inner-boundary
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Buongiorno, in allegato il documento richiesto.
` + "Cordiali saluti.\n\n--inner-boundary\nContent-Type: application/pdf; name=\"documento.pdf\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"documento.pdf\"\n\n"

// postacertWithPDF returns a postacert.eml with a base64 attachment of n bytes.
func postacertWithPDF(n int) string {
	return testPostacert + wrap64(bytes.Repeat([]byte("%PDF-1.4 fake "), n/14+1)[:n]) + "\n--inner-boundary--\n"
}

// brevePostacert is the original of a breve receipt: attachments replaced by .hash parts.
const brevePostacert = `Date: Mon, 05 Feb 2024 09:08:06 +0100
Subject: Prova
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner-boundary"
From: "Mittente" <mittente@pec.example.it>
To: dest@pec.example.it
Message-ID: <orig-123@pec.example.it>

--inner-boundary
Content-Type: text/plain; charset=utf-8

Testo.

--inner-boundary
Content-Type: text/plain; name="documento.pdf.hash"
Content-Disposition: attachment; filename="documento.pdf.hash"

0123456789ABCDEF0123456789abcdef01234567
--inner-boundary
Content-Type: text/plain; name="=?iso-8859-1?Q?fattura_n=B0_1.xml.hash?="

89abcdef0123456789abcdef0123456789abcdef

--inner-boundary--
`
