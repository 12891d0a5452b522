package pectest

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// IndexLDIF returns a provider index (IGPEC, RFC 6109 section 4.5) in LDIF listing providers:
// providerName (the gestore name), providerCertificateHash (SHA-1 hex of the signer
// certificate's DER), providerCertificate;binary, mailReceipt and managedDomains, in the layout
// of the RFC example. Pass the providers a verifier should know (a defective signer can be
// listed too, to test the other checks in isolation).
func IndexLDIF(providers ...*Provider) []byte {
	var b strings.Builder
	b.WriteString("dn: o=postacert\nobjectclass: top\nobjectclass: organization\nobjectClass: LDIFLocationURLObject\n" +
		"o: postacert\nLDIFLocationURL: https://igpec.example/igpec.ldif.p7m\ndescription: Base root for the PEC providers directory\n")
	for _, p := range providers {
		sum := sha1.Sum(p.Signer.Cert.Raw)
		b.WriteString("\ndn: providerName=" + p.Info.Name + ",o=postacert\n")
		b.WriteString("objectclass: top\nobjectclass: provider\n")
		b.WriteString("providerName: " + p.Info.Name + "\n")
		b.WriteString("providerCertificateHash:\n " + strings.ToUpper(hex.EncodeToString(sum[:])) + "\n")
		b.WriteString("providerCertificate;binary::\n")
		enc := base64.StdEncoding.EncodeToString(p.Signer.Cert.Raw)
		for len(enc) > 58 {
			b.WriteString(" " + enc[:58] + "\n")
			enc = enc[58:]
		}
		b.WriteString(" " + enc + "\n")
		b.WriteString("mailReceipt: " + p.Address() + "\n")
		for _, d := range p.Info.ManagedDomains {
			b.WriteString("managedDomains: " + d + "\n")
		}
		b.WriteString("description: Servizi di posta elettronica certificata (test)\n")
	}
	return []byte(b.String())
}

// SignIndex returns the index as an opaque CMS SignedData in DER (igpec.ldif.p7m), signed at
// the given time by an index signer certificate issued by ca's root (the PEC profile does not
// apply to it). The signer certificate is derived from the seed like every other.
func (ca *CA) SignIndex(ldif []byte, at time.Time) ([]byte, error) {
	if len(ldif) == 0 {
		return nil, errors.New("pectest: empty index")
	}
	if at.IsZero() {
		at = ca.Time
	}
	key, err := Key(ca.seed, "index-signer")
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.seed, "index-signer"),
		RawSubject: rdnSequence([2]string{"C", "IT"}, [2]string{"O", "Agenzia di Esempio per la PEC"},
			[2]string{"CN", "Indice dei gestori PEC (TEST)"}),
		NotBefore:    ca.Time.AddDate(-1, 0, 0),
		NotAfter:     ca.Time.AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		SubjectKeyId: ski(&key.PublicKey),
	}
	cert, err := createCert(tmpl, ca.Root, &key.PublicKey, ca.RootKey)
	if err != nil {
		return nil, err
	}
	s := &Signer{Cert: cert, Key: key, Root: ca.Root}
	cms, err := s.Sign(ldif, SignOptions{Digest: SHA256, SigningTime: at, Opaque: true})
	if err != nil {
		return nil, fmt.Errorf("pectest: sign index: %w", err)
	}
	return cms, nil
}
