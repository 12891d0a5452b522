package pectest

import (
	"fmt"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// spec is one provider message before assembly.
type spec struct {
	kind        pec.Kind
	headers     []string // header lines ("Name: value\n", folded), before MIME-Version
	messageID   string   // without angle brackets
	at          time.Time
	signingTime time.Time
	text, html  string
	daticert    []byte
	attach      []byte // postacert.eml (LF), nil for none
	key         string // determinism key
	deliveredTo string // trace: the mailbox the copy is delivered to
	returnPath  string
}

// Assembled is the result of assembling a signed provider message.
type assembled struct {
	raw    []byte
	entity []byte // signed entity, canonical CRLF
}

// assemble writes the signed message in the layout of the real Aruba envelope.
func (p *Provider) assemble(s *spec) (*assembled, error) {
	pid := 1000 + p.num(98000, "mime-pid", s.key)
	n := 100 + p.num(5000, "mime-n", s.key)
	ts := s.at.Unix()
	mixed := fmt.Sprintf("----------=_%d-%d-%d", ts, pid, n)
	alt := fmt.Sprintf("----------=_%d-%d-%d", ts, pid, n+1)

	ent := entityLF(mixed, alt, s)
	entity := toCRLF(ent)

	st := s.signingTime
	if st.IsZero() {
		st = s.at
	}
	cms, err := p.Signer.Sign(entity, SignOptions{Digest: p.opts.Digest, SigningTime: st, Opaque: p.opts.Opaque})
	if err != nil {
		return nil, err
	}

	var m strings.Builder
	if !p.opts.NoTrace && s.deliveredTo != "" {
		m.WriteString(p.trace(s))
	}
	for _, h := range s.headers {
		m.WriteString(h)
	}
	m.WriteString("MIME-Version: 1.0\n")
	sigType, mimeType := "application/x-pkcs7-signature", "application/x-pkcs7-mime"
	if p.opts.Digest == SHA256 {
		sigType, mimeType = "application/pkcs7-signature", "application/pkcs7-mime"
	}
	if p.opts.Opaque {
		m.WriteString("Content-Type: " + mimeType + "; smime-type=signed-data; name=\"smime.p7m\"\n")
		m.WriteString("Content-Transfer-Encoding: base64\n")
		m.WriteString("Content-Disposition: attachment; filename=\"smime.p7m\"\n")
		m.WriteString("Message-ID: <" + s.messageID + ">\n\n")
		m.Write(base64Lines(cms, 64))
	} else {
		r := p.rnd("outer-boundary", s.key)
		outer := fmt.Sprintf("----%X", r[:16])
		m.WriteString("Content-Type: multipart/signed; protocol=\"" + sigType + "\"; micalg=\"" + string(p.opts.Digest) + "\"; boundary=\"" + outer + "\"\n")
		m.WriteString("Message-ID: <" + s.messageID + ">\n")
		m.WriteString("\nThis is an S/MIME signed message\n\n--" + outer + "\n")
		m.Write(ent)
		m.WriteString("\n--" + outer + "\n")
		m.WriteString("Content-Type: " + sigType + "; name=\"smime.p7s\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"smime.p7s\"\n\n")
		m.Write(base64Lines(cms, 64))
		m.WriteString("\n--" + outer + "--\n\n")
	}
	raw := []byte(m.String())
	if !p.opts.LF {
		raw = toCRLF(raw)
	}
	return &assembled{raw: raw, entity: entity}, nil
}

// entityLF writes the signed entity (LF line ends): multipart/mixed { multipart/alternative {
// text/plain, text/html } ISO-8859-1 quoted-printable, daticert.xml base64, postacert.eml 7bit }.
func entityLF(mixed, alt string, s *spec) []byte {
	var e strings.Builder
	e.WriteString("Content-Type: multipart/mixed; boundary=\"" + mixed + "\"\n")
	e.WriteString("Content-Transfer-Encoding: binary\nMIME-Version: 1.0\n\n")
	e.WriteString("--" + mixed + "\n")
	e.WriteString("Content-Type: multipart/alternative;\n boundary=\"" + alt + "\"\n")
	e.WriteString("Content-Transfer-Encoding: binary\n\n")
	e.WriteString("--" + alt + "\n")
	e.WriteString("Content-Type: text/plain; charset=\"iso-8859-1\"\nContent-Disposition: inline\nContent-Transfer-Encoding: quoted-printable\n\n")
	e.Write(quotedPrintable(latin1(s.text)))
	e.WriteString("\n--" + alt + "\n")
	e.WriteString("Content-Type: text/html; charset=\"iso-8859-1\"\nContent-Disposition: inline\nContent-Transfer-Encoding: quoted-printable\n\n")
	e.Write(quotedPrintable(latin1(s.html)))
	e.WriteString("\n--" + alt + "--\n")
	if s.daticert != nil {
		e.WriteString("\n--" + mixed + "\n")
		e.WriteString("Content-Type: application/xml; name=\"daticert.xml\"\nContent-Disposition: inline; filename=\"daticert.xml\"\nContent-Transfer-Encoding: base64\n\n")
		e.Write(base64Lines(s.daticert, 60))
	}
	if s.attach != nil {
		e.WriteString("\n--" + mixed + "\n")
		e.WriteString("Content-Type: message/rfc822; name=\"postacert.eml\"\nContent-Disposition: inline; filename=\"postacert.eml\"\nContent-Transfer-Encoding: 7bit\n\n")
		e.Write(s.attach)
		e.WriteString("\n")
	}
	e.WriteString("\n--" + mixed + "--\n")
	return []byte(e.String())
}

// trace returns the headers a mailbox copy gets on delivery: Return-Path, Delivered-To and two
// Received lines in the Postfix/LMTP style of the real envelope.
func (p *Provider) trace(s *spec) string {
	mx := domainOf(s.deliveredTo)
	if pi, ok := p.CA.Provider(mx); ok {
		mx = pi.Domain
	}
	qid := func(label string) string {
		r := p.rnd("qid", label, s.key, s.deliveredTo)
		const chars = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
		var b strings.Builder
		b.WriteString("4R")
		for _, c := range r[:13] {
			b.WriteByte(chars[int(c)%len(chars)])
		}
		return b.String()
	}
	d := receivedDate(s.at)
	return "Return-Path: <" + s.returnPath + ">\n" +
		"Delivered-To: " + s.deliveredTo + "\n" +
		"Received: from mx." + mx + " (localhost [127.0.0.1])\n" +
		"\tby mbox." + mx + " (lmtpd) with LMTP id " + fmt.Sprint(10000+p.num(89999, "lmtp", s.key, s.deliveredTo)) + ".002;\n" +
		"\t" + d + "\n" +
		"Received: from smtps." + p.Info.Domain + " (smtps." + p.Info.Domain + " [192.0.2." + fmt.Sprint(1+p.num(250, "ip", p.Info.Domain)) + "])\n" +
		"\tby mx." + mx + " (Postfix) with ESMTP id " + qid("mx") + "\n" +
		"\tfor <" + s.deliveredTo + ">; " + d + "\n"
}
