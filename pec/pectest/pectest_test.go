package pectest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/smallstep/pkcs7"
)

// splitSigned extracts the signed entity (as in the message) and the CMS from a generated
// message, independently of the generator.
func splitSigned(t testing.TB, raw []byte) (entity, cms []byte, opaque bool) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	ct, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content-type: %v", err)
	}
	nl := "\n"
	if bytes.Contains(raw, []byte("\r\n")) {
		nl = "\r\n"
	}
	body := raw[bytes.Index(raw, []byte(nl+nl))+2*len(nl):]
	if strings.HasSuffix(ct, "pkcs7-mime") {
		b, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(body)))
		if err != nil {
			t.Fatalf("base64 p7m: %v", err)
		}
		return nil, b, true
	}
	if ct != "multipart/signed" {
		t.Fatalf("content type %q", ct)
	}
	delim := []byte(nl + "--" + params["boundary"])
	first := bytes.Index(body, []byte("--"+params["boundary"]+nl))
	if first < 0 {
		t.Fatal("no first boundary")
	}
	start := first + len("--"+params["boundary"]+nl)
	end := bytes.Index(body[start:], delim)
	if end < 0 {
		t.Fatal("no second boundary")
	}
	entity = body[start : start+end]
	rest := body[start+end+len(delim):]
	sigStart := bytes.Index(rest, []byte(nl+nl)) + 2*len(nl)
	sigEnd := bytes.Index(rest[sigStart:], delim)
	if sigEnd < 0 {
		t.Fatal("no closing boundary")
	}
	b64 := strings.NewReplacer("\r", "", "\n", "").Replace(string(rest[sigStart : sigStart+sigEnd]))
	cms, err = base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("base64 p7s: %v", err)
	}
	return entity, cms, false
}

func canon(b []byte) []byte { return toCRLF(toLF(b)) }

// Minimal CMS structures to check the signature math independently of pkcs7.
type tSignerInfo struct {
	Version     int
	IssuerAndSN asn1.RawValue
	DigestAlg   pkix.AlgorithmIdentifier
	SignedAttrs asn1.RawValue `asn1:"optional,tag:0"`
	SigAlg      pkix.AlgorithmIdentifier
	Signature   []byte
}
type tSignedData struct {
	Version     int
	DigestAlgs  asn1.RawValue
	Encap       asn1.RawValue
	Certs       asn1.RawValue `asn1:"optional,tag:0"`
	SignerInfos []tSignerInfo `asn1:"set"`
}
type tContentInfo struct {
	OID     asn1.ObjectIdentifier
	Content tSignedData `asn1:"explicit,tag:0"`
}

// checkSignatureMath verifies the RSA signature over the signed attributes with cert's key.
func checkSignatureMath(cms []byte, cert *x509.Certificate) error {
	var ci tContentInfo
	rest, err := asn1.Unmarshal(cms, &ci)
	if err != nil || len(rest) > 0 {
		return errors.New("not DER ContentInfo")
	}
	si := ci.Content.SignerInfos[0]
	signed := slices.Clone(si.SignedAttrs.FullBytes)
	signed[0] = 0x31 // SET OF
	h, sum := crypto.SHA1, []byte(nil)
	if si.DigestAlg.Algorithm.Equal(oidSHA256) {
		s := sha256.Sum256(signed)
		h, sum = crypto.SHA256, s[:]
	} else {
		s := sha1.Sum(signed)
		sum = s[:]
	}
	return rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), h, sum, si.Signature)
}

func newPair(t testing.TB, seed int64) (a, b *Provider) {
	t.Helper()
	a, err := NewProvider(seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err = a.Peer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestKeyDeterministic(t *testing.T) {
	k1, err := deriveKey(42, "x")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := deriveKey(42, "x")
	k3, _ := deriveKey(42, "y")
	if !k1.Equal(k2) {
		t.Fatal("same seed and label gave different keys")
	}
	if k1.Equal(k3) {
		t.Fatal("different labels gave the same key")
	}
	if k1.N.BitLen() != 2048 {
		t.Fatalf("key size %d", k1.N.BitLen())
	}
	if c, _ := Key(42, "x"); !c.Equal(k1) {
		t.Fatal("cached key differs")
	}
}

func TestDeterministic(t *testing.T) {
	x, err := allKinds(3)
	if err != nil {
		t.Fatal(err)
	}
	y, err := allKinds(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(y) {
		t.Fatal("different counts")
	}
	for i := range x {
		if x[i].Name != y[i].Name || !bytes.Equal(x[i].Bytes, y[i].Bytes) {
			t.Errorf("%s: not deterministic", x[i].Name)
		}
	}
	z := AllKinds(4)
	if bytes.Equal(z[1].Bytes, x[1].Bytes) {
		t.Error("different seeds gave the same bytes")
	}
	// The cache returns copies.
	c := AllKinds(3)
	c[1].Bytes[0] ^= 0xff
	if d := AllKinds(3); !bytes.Equal(d[1].Bytes, x[1].Bytes) {
		t.Error("AllKinds cache was modified through a returned slice")
	}
	if !bytes.Equal(TypicalDeliveryReceipt(3), TypicalDeliveryReceipt(3)) {
		t.Error("typical receipt not deterministic")
	}
}

func TestAllKindsNames(t *testing.T) {
	gs := AllKinds(1)
	seen := map[string]bool{}
	kinds := map[pec.Kind]bool{}
	for _, g := range gs {
		if seen[g.Name] {
			t.Errorf("duplicate name %s", g.Name)
		}
		seen[g.Name] = true
		kinds[g.Kind] = true
	}
	for _, k := range pec.Kinds {
		if !kinds[k] {
			t.Errorf("kind %s missing", k)
		}
	}
	for _, n := range []string{"avvenuta-consegna-breve", "errore-consegna-no-dominio", "non-accettazione-virus",
		"avvenuta-consegna-completa-opaque", "forged", "avvenuta-consegna-completa-tampered",
		"avvenuta-consegna-completa-signer-expired", "accettazione-cet"} {
		if !seen[n] {
			t.Errorf("%s missing", n)
		}
	}
}

var subjectPrefix = map[pec.Kind]string{
	pec.KindPostaCertificata:        "POSTA CERTIFICATA: ",
	pec.KindAnomalia:                "ANOMALIA MESSAGGIO: ",
	pec.KindAccettazione:            "ACCETTAZIONE: ",
	pec.KindNonAccettazione:         "AVVISO DI NON ACCETTAZIONE",
	pec.KindPresaInCarico:           "PRESA IN CARICO: ",
	pec.KindRilevazioneVirus:        "PROBLEMA DI SICUREZZA: ",
	pec.KindAvvenutaConsegna:        "CONSEGNA: ",
	pec.KindErroreConsegna:          "AVVISO DI MANCATA CONSEGNA",
	pec.KindPreavvisoErroreConsegna: "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ",
}

// walkAll walks every entity of raw with go-message, descending into message/rfc822 parts, and
// returns the leaf content types with their decoded bodies.
func walkAll(t *testing.T, name string, raw []byte, depth int) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		t.Fatalf("%s: go-message: %v", name, err)
	}
	err = e.Walk(func(path []int, ent *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) {
			return err
		}
		ct, _, _ := ent.Header.ContentType()
		if strings.HasPrefix(ct, "multipart/") {
			return nil
		}
		b, err := io.ReadAll(ent.Body)
		if err != nil {
			return err
		}
		out[ct] = append(out[ct], b)
		if ct == "message/rfc822" && depth < 3 {
			for k, v := range walkAll(t, name+"/rfc822", b, depth+1) {
				out["inner:"+k] = append(out["inner:"+k], v...)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: walk: %v", name, err)
	}
	return out
}

// checkMultiparts checks every multipart boundary of raw with the standard library's strict
// reader: every part must be reachable and the closing delimiter present.
func checkMultiparts(t *testing.T, name string, header map[string][]string, body []byte, depth int) {
	t.Helper()
	ct, params, err := mime.ParseMediaType(mail.Header(header).Get("Content-Type"))
	if err != nil || !strings.HasPrefix(ct, "multipart/") || depth > 5 {
		return
	}
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	n := 0
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: multipart %q: %v", name, params["boundary"], err)
		}
		n++
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("%s: part: %v", name, err)
		}
		checkMultiparts(t, name, p.Header, b, depth+1)
	}
	if n == 0 {
		t.Errorf("%s: empty multipart", name)
	}
}

func TestAllKindsStructure(t *testing.T) {
	for _, g := range AllKinds(1) {
		if g.Failure == FailureTruncated {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			msg, err := mail.ReadMessage(bytes.NewReader(g.Bytes))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(msg.Body)
			checkMultiparts(t, g.Name, msg.Header, body, 0)
			h := msg.Header
			if bytes.Contains(g.Bytes, []byte("\r\n")) == strings.HasSuffix(g.Name, "-lf") {
				t.Errorf("line ends wrong")
			}
			if g.Name != "avvenuta-consegna-completa-lf" && bytes.Count(g.Bytes, []byte("\n")) != bytes.Count(g.Bytes, []byte("\r\n")) {
				t.Errorf("mixed line ends")
			}
			if g.Kind == pec.KindNotPEC {
				if h.Get("Message-ID") != "<"+g.MsgID+">" {
					t.Errorf("original Message-ID %q", h.Get("Message-ID"))
				}
				return
			}
			subj, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
			if !strings.HasPrefix(subj, subjectPrefix[g.Kind]) {
				t.Errorf("subject %q for %s", subj, g.Kind)
			}
			if g.MsgID != "" && h.Get("X-Riferimento-Message-ID") != "<"+g.MsgID+">" {
				t.Errorf("X-Riferimento-Message-ID %q, want <%s>", h.Get("X-Riferimento-Message-ID"), g.MsgID)
			}
			if h.Get("Message-ID") != "<"+g.MessageID+">" {
				t.Errorf("Message-ID %q", h.Get("Message-ID"))
			}
			from, err := mail.ParseAddress(h.Get("From"))
			if err != nil {
				t.Fatalf("From: %v", err)
			}
			if from.Address != "posta-certificata@"+g.Issuer {
				t.Errorf("From %q", from.Address)
			}
			switch g.Kind {
			case pec.KindPostaCertificata, pec.KindAnomalia:
				if !strings.HasPrefix(from.Name, "Per conto di: ") {
					t.Errorf("envelope From name %q", from.Name)
				}
				want := "posta-certificata"
				if g.Kind == pec.KindAnomalia {
					want = "errore"
				}
				if h.Get("X-Trasporto") != want {
					t.Errorf("X-Trasporto %q", h.Get("X-Trasporto"))
				}
				if g.Kind == pec.KindPostaCertificata && h.Get("X-TipoRicevuta") != string(g.ReceiptType) {
					t.Errorf("X-TipoRicevuta %q", h.Get("X-TipoRicevuta"))
				}
				if g.MessageID != g.ID {
					t.Errorf("envelope Message-ID %q is not the identificativo %q", g.MessageID, g.ID)
				}
			default:
				if h.Get("X-Ricevuta") != string(g.Kind) {
					t.Errorf("X-Ricevuta %q", h.Get("X-Ricevuta"))
				}
			}
			virus := g.Error == pec.ErrVirus
			if (h.Get("X-VerificaSicurezza") == "errore") != virus {
				t.Errorf("X-VerificaSicurezza %q with errore %s", h.Get("X-VerificaSicurezza"), g.Error)
			}
			if g.Kind == pec.KindRilevazioneVirus && h.Get("X-Mittente") == "" {
				t.Error("X-Mittente missing")
			}
			if g.Failure != "" {
				return
			}
			walked := g.Bytes
			if g.Name == "avvenuta-consegna-completa-opaque" {
				walked = g.Content
			}
			parts := walkAll(t, g.Name, walked, 0)
			if len(parts["text/plain"]) != 1 || len(parts["text/html"]) != 1 {
				t.Errorf("alternatives: %d text, %d html", len(parts["text/plain"]), len(parts["text/html"]))
			}
			if g.Kind == pec.KindAnomalia {
				if len(parts["application/xml"]) != 0 {
					t.Error("anomaly with daticert")
				}
			} else {
				if len(parts["application/xml"]) != 1 {
					t.Fatalf("%d daticert parts", len(parts["application/xml"]))
				}
				if got := parts["application/xml"][0]; !bytes.Equal(got, g.Daticert.Marshal()) {
					t.Errorf("daticert part differs from Daticert")
				}
				checkDaticertXML(t, parts["application/xml"][0], &g)
			}
			wantPost := g.Kind == pec.KindPostaCertificata || g.Kind == pec.KindAnomalia ||
				(g.Kind == pec.KindAvvenutaConsegna && g.ReceiptType != pec.ReceiptSintetica)
			if (len(parts["message/rfc822"]) == 1) != wantPost {
				t.Errorf("%d postacert parts", len(parts["message/rfc822"]))
			}
			if wantPost && !bytes.Equal(canon(parts["message/rfc822"][0]), canon(g.Postacert)) {
				t.Errorf("postacert differs")
			}
			if g.ReceiptType == pec.ReceiptBreve && g.Kind == pec.KindAvvenutaConsegna {
				if len(parts["inner:application/pdf"]) != 0 || len(g.HashParts) == 0 {
					t.Errorf("breve receipt still carries attachments (%d hash parts)", len(g.HashParts))
				}
			}
		})
	}
}

// checkDaticertXML parses daticert.xml with encoding/xml-free string checks of the fields that
// cross-reference other messages.
func checkDaticertXML(t *testing.T, x []byte, g *Generated) {
	t.Helper()
	s := string(x)
	for _, want := range []string{
		`<postacert tipo="` + string(g.Kind) + `"`,
		"<identificativo>" + g.ID + "</identificativo>",
		"<msgid>&lt;" + g.MsgID + "&gt;</msgid>",
		"<gestore-emittente>",
		`<data zona="+0`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("daticert lacks %q", want)
		}
	}
	if g.Recipient != "" && g.Kind != pec.KindPostaCertificata && !strings.Contains(s, "<consegna>"+g.Recipient+"</consegna>") {
		t.Errorf("daticert lacks consegna %s", g.Recipient)
	}
	if g.ReceiptType != "" && !strings.Contains(s, `<ricevuta tipo="`+string(g.ReceiptType)+`" />`) {
		t.Errorf("daticert lacks ricevuta %s", g.ReceiptType)
	}
	if g.Error != "" && !strings.Contains(s, `errore="`+string(g.Error)+`"`) {
		t.Errorf("daticert lacks errore %s", g.Error)
	}
}

func TestAllKindsCMS(t *testing.T) {
	ca, err := NewCA(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	roots := ca.Roots()
	for _, g := range AllKinds(1) {
		if g.Kind == pec.KindNotPEC || g.Failure == FailureTruncated {
			continue
		}
		t.Run(g.Name, func(t *testing.T) {
			entity, cms, opaque := splitSigned(t, g.Bytes)
			p7, err := pkcs7.Parse(cms)
			if err != nil {
				t.Fatalf("pkcs7 parse: %v", err)
			}
			if opaque {
				if !bytes.Equal(p7.Content, g.Content) {
					t.Fatal("opaque content differs from the canonical entity")
				}
			} else {
				if g.Failure == FailureNone && !bytes.Equal(canon(entity), g.Content) {
					t.Fatal("signed entity differs from Content")
				}
				p7.Content = canon(entity)
			}
			if len(p7.Certificates) != 2 || !bytes.Equal(p7.Certificates[0].Raw, g.Signer.Cert.Raw) {
				t.Errorf("certificates: want signer then intermediate, got %d", len(p7.Certificates))
			}
			var st time.Time
			if err := p7.UnmarshalSignedAttribute(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}, &st); err != nil || !st.Equal(g.SigningTime) {
				t.Errorf("signingTime %v (%v), want %v", st, err, g.SigningTime)
			}
			verr := p7.VerifyWithChainAtTime(roots, g.SigningTime)
			// pkcs7 checks digest, signature, signing time within the signer's validity and the
			// chain; it does not check the PEC profile (SAN, key usage, CA flag).
			wantOK := g.WantValid && g.Failure == FailureNone && !slices.Contains(
				[]Defect{DefectExpired, DefectNotYetValid, DefectUntrusted, DefectOutsideConstraints}, g.Defect)
			if (verr == nil) != wantOK {
				t.Errorf("pkcs7 verify: %v (want ok=%v)", verr, wantOK)
			}
			mathErr := checkSignatureMath(cms, g.Signer.Cert)
			if (mathErr == nil) != (g.Defect != DefectForged) {
				t.Errorf("signature math: %v", mathErr)
			}
			if g.Failure == FailureTampered {
				var mm *pkcs7.MessageDigestMismatchError
				if !errors.As(verr, &mm) {
					t.Errorf("tampered: %v", verr)
				}
			}
		})
	}
}

func TestCertificateProfile(t *testing.T) {
	a, _ := newPair(t, 1)
	c := a.Signer.Cert
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("key usage %v", c.KeyUsage)
	}
	if c.BasicConstraintsValid {
		t.Error("signer has BasicConstraints")
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}) {
		t.Errorf("EKU %v", c.ExtKeyUsage)
	}
	if !slices.Equal(c.EmailAddresses, []string{"posta-certificata@pec.example.it"}) {
		t.Errorf("SAN %v", c.EmailAddresses)
	}
	if len(c.PolicyIdentifiers) != 1 || !c.PolicyIdentifiers[0].Equal(PolicySigner) {
		t.Errorf("policies %v", c.PolicyIdentifiers)
	}
	if c.PublicKey.(*rsa.PublicKey).N.BitLen() != 2048 {
		t.Error("not RSA-2048")
	}
	if got := c.NotAfter.Sub(c.NotBefore); got < 3*365*24*time.Hour || got > 3*366*24*time.Hour {
		t.Errorf("validity %v", got)
	}
	if !strings.Contains(c.Subject.String(), "O=Example PEC S.p.A.") || !strings.HasPrefix(c.Subject.CommonName, "Posta Certificata") {
		t.Errorf("subject %s", c.Subject)
	}
	for _, ext := range c.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 15}) && !ext.Critical {
			t.Error("KeyUsage not critical")
		}
	}
	ca := a.CA
	if !ca.Intermediate.IsCA || ca.Intermediate.MaxPathLen != 0 || !ca.Intermediate.MaxPathLenZero {
		t.Error("intermediate constraints")
	}
	if !slices.Contains(ca.Intermediate.PermittedEmailAddresses, "pec.example.it") ||
		!slices.Contains(ca.Intermediate.PermittedDNSDomains, "pec.esempio.it") || len(ca.Intermediate.ExcludedIPRanges) != 2 {
		t.Errorf("name constraints: %v %v %v", ca.Intermediate.PermittedEmailAddresses, ca.Intermediate.PermittedDNSDomains, ca.Intermediate.ExcludedIPRanges)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.Roots(), Intermediates: ca.Intermediates(), CurrentTime: ca.Time,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Errorf("chain: %v", err)
	}
	// Exports.
	for _, b := range [][]byte{ca.RootPEM(), ca.IntermediatePEM(), a.Signer.ChainPEM()} {
		if !bytes.HasPrefix(b, []byte("-----BEGIN CERTIFICATE-----\n")) {
			t.Error("bad PEM")
		}
	}
	if r, err := x509.ParseCertificate(ca.Root.Raw); err != nil || !r.Equal(ca.Root) {
		t.Error("root DER")
	}
}

func TestDefects(t *testing.T) {
	a, _ := newPair(t, 1)
	ca := a.CA
	at := ca.Time
	verify := func(s *Signer) error {
		inter := x509.NewCertPool()
		for _, c := range s.Chain {
			inter.AddCert(c)
		}
		_, err := s.Cert.Verify(x509.VerifyOptions{Roots: ca.Roots(), Intermediates: inter, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
		return err
	}
	for _, d := range Defects {
		q, err := a.With(func(o *Options) { o.Defect = d })
		if err != nil {
			t.Fatal(err)
		}
		s := q.Signer
		if s.Defect != d {
			t.Fatalf("defect %v", s.Defect)
		}
		c := s.Cert
		err = verify(s)
		switch d {
		case DefectExpired:
			if !c.NotAfter.Before(at) || err == nil {
				t.Errorf("%v: not expired (%v)", d, err)
			}
		case DefectNotYetValid:
			if !c.NotBefore.After(at) || err == nil {
				t.Errorf("%v: valid (%v)", d, err)
			}
		case DefectUntrusted:
			if err == nil || s.Root.Equal(ca.Root) || s.Root.Subject.String() != ca.Root.Subject.String() {
				t.Errorf("%v: %v", d, err)
			}
		case DefectWrongSAN:
			if err != nil || c.EmailAddresses[0] == q.Address() {
				t.Errorf("%v: %v %v", d, err, c.EmailAddresses)
			}
		case DefectOutsideConstraints:
			var ce x509.CertificateInvalidError
			if !errors.As(err, &ce) || ce.Reason != x509.CANotAuthorizedForThisName {
				t.Errorf("%v: %v", d, err)
			}
		case DefectCA:
			if err != nil || !c.IsCA {
				t.Errorf("%v: %v", d, err)
			}
		case DefectNoDigitalSignature:
			if err != nil || c.KeyUsage&x509.KeyUsageDigitalSignature != 0 {
				t.Errorf("%v: %v", d, err)
			}
		case DefectForged:
			if err != nil || s.SignKey == nil || s.SignKey.Equal(s.Key) {
				t.Errorf("%v: %v", d, err)
			}
		}
	}
}

// TestBreveHashes checks every .hash value against the original's parts, extracted with the
// standard library's multipart reader.
func TestBreveHashes(t *testing.T) {
	a, b := newPair(t, 1)
	o, err := a.Original(&Original{ReceiptType: pec.ReceiptBreve, Attachments: []Attachment{
		{Name: "atto.pdf", ContentType: "application/pdf", Data: a.FileData(5000, "atto")},
		{Name: "ricevuta è.txt", ContentType: "text/plain", Data: []byte("testo\n")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := b.Delivery(Params{Original: o})
	if err != nil {
		t.Fatal(err)
	}
	if g.ReceiptType != pec.ReceiptBreve || len(g.HashParts) != 2 {
		t.Fatalf("%s with %d hash parts", g.ReceiptType, len(g.HashParts))
	}
	msg, _ := mail.ReadMessage(bytes.NewReader(o.Raw))
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	r := multipart.NewReader(msg.Body, params["boundary"])
	want := map[string]string{}
	for {
		p, err := r.NextRawPart()
		if err != nil {
			break
		}
		body, _ := io.ReadAll(p)
		_, dp, _ := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if name := dp["filename"]; name != "" {
			dec, _ := new(mime.WordDecoder).DecodeHeader(name)
			s := sha1.Sum(canon(body))
			want[dec] = strings.ToLower(strings.TrimSpace(string(bytes.ToUpper([]byte(hexString(s[:]))))))
		}
	}
	for _, h := range g.HashParts {
		if want[h.Name] == "" || want[h.Name] != h.SHA1 {
			t.Errorf("%s: hash %s, want %s", h.Name, h.SHA1, want[h.Name])
		}
		if !bytes.Contains(g.Postacert, []byte("\n\n"+h.SHA1+"\n")) {
			t.Errorf("%s: hash not in postacert", h.Name)
		}
	}
	if !bytes.Contains(g.Postacert, []byte(`filename="=?utf-8?Q?ricevuta_=C3=A8.txt.hash?="`)) {
		t.Error("encoded .hash name missing")
	}
	// Attached messages are replaced whole.
	fwd, err := a.Original(&Original{ReceiptType: pec.ReceiptBreve, Attachments: []Attachment{
		{Name: "inoltro.eml", ContentType: "message/rfc822", Data: o.Raw}}})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := b.Delivery(Params{Original: fwd})
	if err != nil {
		t.Fatal(err)
	}
	if len(g2.HashParts) != 1 || g2.HashParts[0].Name != "inoltro.eml" || bytes.Contains(g2.Postacert, []byte("atto.pdf")) {
		t.Errorf("forwarded message not replaced: %+v", g2.HashParts)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestConversation(t *testing.T) {
	a, _ := newPair(t, 5)
	c, err := a.Conversation(&ConversationConfig{AttachmentSize: 10000})
	if err != nil {
		t.Fatal(err)
	}
	o := c.Original
	acc := c.Find(pec.KindAccettazione, "")
	if acc == nil || acc.ID != o.ID {
		t.Fatal("acceptance missing or with another identificativo")
	}
	for _, g := range c.Messages {
		if g.MsgID != o.MessageID {
			t.Errorf("%s: msgid %s", g.Name, g.MsgID)
		}
		if g.Kind != pec.KindNotPEC && g.Daticert.Identificativo != o.ID {
			t.Errorf("%s: identificativo %s", g.Name, g.Daticert.Identificativo)
		}
		if g.Kind != pec.KindNotPEC && !g.WantTrusted {
			t.Errorf("%s: not trusted", g.Name)
		}
	}
	for i := 1; i < len(c.Messages); i++ {
		if c.Messages[i].Time.Before(c.Messages[i-1].Time) {
			t.Error("messages not in time order")
		}
	}
	// To (other provider): envelope + completa receipt; Cc same provider: sintetica; Cc external: envelope only.
	cases := []struct {
		rcpt     string
		receipt  pec.ReceiptType
		envelope bool
	}{
		{"protocollo@pec.esempio.it", pec.ReceiptCompleta, true},
		{"ufficio@pec.example.it", pec.ReceiptSintetica, true},
		{"info@example.com", "", true},
	}
	var envSigned [][]byte
	for _, tc := range cases {
		env := c.Find(pec.KindPostaCertificata, tc.rcpt)
		if (env != nil) != tc.envelope {
			t.Errorf("%s: envelope %v", tc.rcpt, env != nil)
		}
		if env != nil {
			envSigned = append(envSigned, env.Content)
			if env.Mailbox != tc.rcpt || env.MessageID != o.ID {
				t.Errorf("%s: envelope mailbox %s id %s", tc.rcpt, env.Mailbox, env.MessageID)
			}
		}
		d := c.Find(pec.KindAvvenutaConsegna, tc.rcpt)
		if tc.receipt == "" {
			if d != nil {
				t.Errorf("%s: external recipient got a delivery receipt", tc.rcpt)
			}
			continue
		}
		if d == nil || d.ReceiptType != tc.receipt || d.Daticert.Consegna != tc.rcpt || d.Mailbox != o.From {
			t.Errorf("%s: delivery %+v", tc.rcpt, d)
		}
	}
	for _, s := range envSigned[1:] {
		if !bytes.Equal(s, envSigned[0]) {
			t.Error("recipients got different signed envelopes")
		}
	}
	pic := c.ByKind(pec.KindPresaInCarico)
	if len(pic) != 1 || !slices.Equal(pic[0].Daticert.Ricezione, []string{"protocollo@pec.esempio.it"}) || pic[0].Issuer != "pec.esempio.it" {
		t.Errorf("presa in carico: %d", len(pic))
	}
	// The completa receipt carries the 10 KB attachment.
	if d := c.Find(pec.KindAvvenutaConsegna, "protocollo@pec.esempio.it"); len(d.Bytes) < 25000 {
		t.Errorf("completa receipt only %d bytes", len(d.Bytes))
	}
}

func TestConversationFailures(t *testing.T) {
	a, _ := newPair(t, 5)
	rc := []string{"a@pec.esempio.it", "b@pec.esempio.it", "c@pec.esempio.it", "d@pec.esempio.it", "e@pec.esempio.it"}
	c, err := a.Conversation(&ConversationConfig{
		Original: &Original{To: rc},
		Outcomes: map[string]Outcome{
			rc[0]: {Error: pec.ErrNoDest},
			rc[1]: {Error: pec.ErrNoDominio},
			rc[2]: {Error: pec.ErrVirus},
			rc[3]: {Late: true},
			rc[4]: {Late: true, Error: pec.ErrAltro, ErrorDetail: "5.4.1 - relay access denied"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(kind pec.Kind, rcpt, issuer string, code pec.ErrorCode) *Generated {
		t.Helper()
		g := c.Find(kind, rcpt)
		if g == nil {
			t.Fatalf("%s for %s missing", kind, rcpt)
		}
		if g.Issuer != issuer || g.Error != code {
			t.Errorf("%s for %s: issuer %s error %s", kind, rcpt, g.Issuer, g.Error)
		}
		return g
	}
	check(pec.KindErroreConsegna, rc[0], "pec.esempio.it", pec.ErrNoDest)
	check(pec.KindErroreConsegna, rc[1], "pec.example.it", pec.ErrNoDominio)
	check(pec.KindRilevazioneVirus, rc[2], "pec.esempio.it", pec.ErrVirus)
	check(pec.KindErroreConsegna, rc[2], "pec.example.it", pec.ErrVirus)
	check(pec.KindPreavvisoErroreConsegna, rc[3], "pec.example.it", pec.ErrAltro)
	if d := c.Find(pec.KindAvvenutaConsegna, rc[3]); d == nil || d.Time.Sub(c.Original.Date) != 13*time.Hour {
		t.Error("late delivery receipt")
	}
	g := check(pec.KindErroreConsegna, rc[4], "pec.example.it", pec.ErrAltro)
	if g.Daticert.ErroreEsteso != "5.4.1 - relay access denied" || g.Time.Sub(c.Original.Date) != 24*time.Hour {
		t.Errorf("late failure %q %v", g.Daticert.ErroreEsteso, g.Time)
	}
	for _, r := range rc[:3] {
		if c.Find(pec.KindPostaCertificata, r) != nil || c.Find(pec.KindAvvenutaConsegna, r) != nil {
			t.Errorf("%s: failed recipient got the envelope or a delivery receipt", r)
		}
	}
}

func TestOptions(t *testing.T) {
	a, b := newPair(t, 1)
	o, err := a.Original(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Settable signing time and digest.
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q, _ := b.With(func(o *Options) { o.Digest = SHA256; o.NoTrace = true; o.LF = true })
	g, err := q.Delivery(Params{Original: o, SigningTime: at})
	if err != nil {
		t.Fatal(err)
	}
	if !g.SigningTime.Equal(at) || bytes.Contains(g.Bytes, []byte("\r")) || bytes.HasPrefix(g.Bytes, []byte("Return-Path")) ||
		!bytes.Contains(g.Bytes, []byte(`micalg="sha-256"`)) || !bytes.Contains(g.Bytes, []byte(`protocol="application/pkcs7-signature"`)) {
		t.Errorf("options not applied")
	}
	_, cms, _ := splitSigned(t, g.Bytes)
	p7, err := pkcs7.Parse(cms)
	if err != nil {
		t.Fatal(err)
	}
	var st time.Time
	if p7.UnmarshalSignedAttribute(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}, &st); !st.Equal(at) {
		t.Errorf("signing time %v", st)
	}
	// Bad input.
	if _, err := a.Original(&Original{To: []string{"not an address"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad address: %v", err)
	}
	if _, err := a.Delivery(Params{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("no original: %v", err)
	}
	if _, err := a.Original(&Original{Attachments: []Attachment{{Name: "x", Data: make([]byte, MaxAttachmentSize+1)}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("huge attachment: %v", err)
	}
	// A provider outside the CA's constraints still generates (its chain fails).
	z, err := a.CA.NewProvider(&Options{Provider: ProviderInfo{Name: "ZETA S.p.A.", Organization: "Zeta S.p.A.", Domain: "pec.zeta.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := z.Signer.Cert.Verify(x509.VerifyOptions{Roots: a.CA.Roots(), Intermediates: a.CA.Intermediates(), CurrentTime: a.CA.Time}); err == nil {
		t.Error("unconstrained provider verified")
	}
}

func TestQuotedPrintable(t *testing.T) {
	in := latin1(strings.Repeat("àbc dé ", 40) + "\nfine riga con spazio \n" + strings.Repeat("x", 76) + "\n" + strings.Repeat("y", 77) + "\n=\t")
	enc := quotedPrintable(in)
	for _, l := range strings.Split(string(enc), "\n") {
		if len(l) > 76 {
			t.Errorf("line of %d: %q", len(l), l)
		}
	}
	dec, err := readAllQP(enc)
	if err != nil || !bytes.Equal(dec, in) {
		t.Errorf("round trip: %v\n%q\n%q", err, dec, in)
	}
}

func TestRome(t *testing.T) {
	for _, tc := range []struct {
		utc  time.Time
		want string
	}{
		{time.Date(2026, 3, 29, 0, 59, 59, 0, time.UTC), "+0100"},
		{time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), "+0200"},
		{time.Date(2026, 10, 25, 0, 59, 59, 0, time.UTC), "+0200"},
		{time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), "+0100"},
		{time.Date(2023, 8, 18, 15, 37, 14, 0, time.UTC), "+0200"},
		{time.Date(2024, 11, 15, 17, 20, 38, 0, time.UTC), "+0100"},
	} {
		lt, z := rome(tc.utc)
		if z != tc.want || lt.Format("-0700") != tc.want {
			t.Errorf("%v: %s", tc.utc, z)
		}
	}
}

func FuzzQuotedPrintable(f *testing.F) {
	f.Add([]byte("Il giorno è\n"))
	f.Add([]byte(strings.Repeat("a=b ", 50)))
	f.Fuzz(func(t *testing.T, in []byte) {
		in = toLF(bytes.ReplaceAll(in, []byte("\r"), nil))
		enc := quotedPrintable(in)
		for _, l := range bytes.Split(enc, []byte("\n")) {
			if len(l) > 76 {
				t.Fatalf("line of %d", len(l))
			}
		}
		dec, err := readAllQP(enc)
		if err != nil || !bytes.Equal(dec, in) {
			t.Fatalf("round trip %q -> %q -> %q (%v)", in, enc, dec, err)
		}
	})
}

func FuzzBreveCopy(f *testing.F) {
	for _, g := range AllKinds(1)[:1] {
		f.Add(toLF(g.Bytes))
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain; name=a\n\nabc\n--x--\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, hashes := breveCopy(in)
		if len(hashes) == 0 && !bytes.Equal(out, in) {
			t.Fatal("changed without hashes")
		}
	})
}

func BenchmarkDelivery(b *testing.B) {
	a, p := newPair(b, 1)
	o, err := a.Original(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := p.Delivery(Params{Original: o, At: o.Date.Add(time.Duration(i) * time.Second)}); err != nil {
			b.Fatal(err)
		}
	}
}
