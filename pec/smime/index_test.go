package smime

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec"
)

const rfcLDIF = "igpec/rfc6109-section-4.5.10-example.ldif"

func TestParseLDIFRFCExample(t *testing.T) {
	l, err := ParseLDIF(samples.Read(t, rfcLDIF))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 3 || len(l.Problems) != 0 {
		t.Fatalf("%d entries, problems %v", len(l.Entries), l.Problems)
	}
	if l.Entries[0].DN != "o=postacert" || l.Entries[0].Value("o") != "postacert" {
		t.Errorf("first entry %+v", l.Entries[0])
	}
	p1 := &l.Entries[1]
	if p1.DN != "providerName=Anonymous Certified Mail S.p.A.,o=postacert" || len(p1.Problems) != 0 {
		t.Errorf("provider 1: %q %v", p1.DN, p1.Problems)
	}
	if got := p1.Value("providercertificatehash"); got != "7E7AEF1059AE0F454F2643A95F69EC3556009239" {
		t.Errorf("folded hash %q", got)
	}
	certs := p1.Values("providerCertificate")
	if len(certs) != 1 || len(certs[0]) < 700 || certs[0][0] != 0x30 {
		t.Fatalf("certificate %d values", len(certs))
	}
	if sum := sha1.Sum(certs[0]); hex.EncodeToString(sum[:]) != "7e7aef1059ae0f454f2643a95f69ec3556009239" {
		t.Errorf("certificate SHA-1 %x", sum)
	}
	for _, a := range p1.Attrs {
		if strings.EqualFold(a.Name, "providerCertificate") && (len(a.Options) != 1 || a.Options[0] != "binary") {
			t.Errorf("options %v", a.Options)
		}
	}
	if d := p1.Values("managedDomains"); len(d) != 3 || string(d[2]) != "costmec.example.com" {
		t.Errorf("managed domains %q", d)
	}
	// The second certificate is mis-transcribed in the RFC: reported, not fatal.
	p2 := &l.Entries[2]
	if len(p2.Problems) != 1 || !strings.Contains(p2.Problems[0], "base64") {
		t.Errorf("provider 2 problems %v", p2.Problems)
	}
	if p2.Value("mailReceipt") != "takecharge@postalser.example.com" {
		t.Errorf("provider 2 after the damaged value: %+v", p2.Attrs)
	}
}

func TestLoadIndexRFCExample(t *testing.T) {
	data := samples.Read(t, rfcLDIF)
	ix, err := LoadIndex(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Providers) != 2 || ix.Signature != nil {
		t.Fatalf("%d providers", len(ix.Providers))
	}
	p1, p2 := &ix.Providers[0], &ix.Providers[1]
	if p1.Name != "Anonymous Certified Mail S.p.A." || len(p1.Problems) != 0 || p1.MailReceipt != "ssacceptance@postalser.example.com" {
		t.Errorf("provider 1 %+v", p1)
	}
	if len(p2.Problems) != 2 || len(p2.Certificates) != 0 || p2.CertificateHashes[0] != "e00fdd9d88be0e2cc766b893315caf93d5701a6a" {
		t.Errorf("provider 2 %+v", p2)
	}
	p, why := ix.Lookup(p1.Certificates[0])
	if p != p1 || why != "" {
		t.Errorf("lookup: %v %q", p, why)
	}
	if got := ix.ProvidersForDomain("Cert.Company.example.com."); len(got) != 1 || got[0] != p1 {
		t.Errorf("by domain %v", got)
	}
	if _, why := ix.Lookup([]byte("other")); why != ReasonNotInIndex {
		t.Errorf("unknown certificate: %q", why)
	}
}

func TestParseLDIFSyntax(t *testing.T) {
	in := "version: 1\r\n" +
		"# comment\r\n" +
		" continued comment\r\n" +
		"dn:: " + b64("cn=Ünicode,o=x") + "\r\n" +
		"cn: a\r\n" +
		"  b\r\n" + // folded: "a" + " b"
		"description:<file:///etc/passwd\r\n" +
		"no colon here\r\n" +
		"jpegPhoto;binary;lang-it:: " + b64("\x00\x01") + "\r\n" +
		"\r\n" +
		"dn: cn=del,o=x\r\n" +
		"changetype: delete\r\n" +
		"\r\n" +
		"cn: orphan\r\n" +
		"\r\n" +
		"dn: cn=last,o=x\r\n" +
		"cn: last"
	l, err := ParseLDIF([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != 1 || len(l.Entries) != 2 {
		t.Fatalf("version %d, %d entries", l.Version, len(l.Entries))
	}
	e := l.Entries[0]
	if e.DN != "cn=Ünicode,o=x" || e.Value("cn") != "a b" || e.Line != 4 {
		t.Errorf("entry %+v", e)
	}
	if len(e.Problems) != 2 {
		t.Errorf("problems %v", e.Problems)
	}
	if v := e.Values("jpegphoto"); len(v) != 1 || !bytes.Equal(v[0], []byte{0, 1}) {
		t.Errorf("binary value %q", v)
	}
	if len(l.Problems) != 2 { // the change record and the record without dn
		t.Errorf("file problems %v", l.Problems)
	}
	if l.Entries[1].Value("cn") != "last" {
		t.Errorf("last entry %+v", l.Entries[1])
	}
}

func b64(s string) string { return base64Lines([]byte(s)) }

// indexLDIF returns an LDIF provider index listing cert (DER) under hash for the given domains.
func indexLDIF(name, hash string, cert []byte, domains ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: o=postacert\nobjectclass: top\no: postacert\n\n")
	fmt.Fprintf(&b, "dn: providerName=%s,o=postacert\nobjectclass: provider\nproviderName: %s\n", name, name)
	fmt.Fprintf(&b, "providerCertificateHash:\n %s\nproviderCertificate;binary::\n", strings.ToUpper(hash))
	for _, line := range strings.Split(strings.ReplaceAll(base64Lines(cert), "\r\n", "\n"), "\n") {
		fmt.Fprintf(&b, " %s\n", line)
	}
	fmt.Fprintf(&b, "mailReceipt: ricevute@pec.example.it\n")
	for _, d := range domains {
		fmt.Fprintf(&b, "managedDomains: %s\n", d)
	}
	return []byte(b.String())
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

func TestVerifyWithIndex(t *testing.T) {
	p := testPKIOnce()
	content := testEntity(1 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	sig := detached(content, cms, "sha-256")
	rfc, err := LoadIndex(samples.Read(t, rfcLDIF), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ldif []byte
		ix   *ProviderIndex
		want []string
	}{
		{"listed", indexLDIF("Example PEC S.p.A.", sha1Hex(p.signer.Raw), p.signer.Raw, "pec.example.it", "example.it"), nil, nil},
		{"domain-not-managed", indexLDIF("Example PEC S.p.A.", sha1Hex(p.signer.Raw), p.signer.Raw, "other.example"), nil, []string{ReasonDomainNotManaged}},
		{"cert-mismatch", indexLDIF("Example PEC S.p.A.", sha1Hex(p.signer.Raw), p.ca.Raw, "pec.example.it"), nil, []string{ReasonIndexCertMismatch}},
		{"not-listed", nil, rfc, []string{ReasonNotInIndex}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := tc.ix
			if ix == nil {
				var err error
				if ix, err = LoadIndex(tc.ldif, nil); err != nil {
					t.Fatal(err)
				}
			}
			v := testVerifier(t, p, ix)
			vd := v.Verify(context.Background(), sig, testFrom, nil)
			wantReasons(t, vd, tc.want...)
			if !vd.Valid || vd.Trusted != (len(tc.want) == 0) {
				t.Errorf("verdict %+v", vd)
			}
			if tc.name == "listed" && vd.Provider != "Example PEC S.p.A." {
				t.Errorf("provider %q", vd.Provider)
			}
		})
	}
}

func TestLoadSignedIndex(t *testing.T) {
	p := testPKIOnce()
	ldif := indexLDIF("Example PEC S.p.A.", sha1Hex(p.signer.Raw), p.signer.Raw, "pec.example.it")
	der := p.buildCMS(t, ldif, cmsOpts{signingTime: t0, opaque: true})
	forms := map[string][]byte{
		"der":    der,
		"pem":    pem.EncodeToMemory(&pem.Block{Type: "PKCS7", Bytes: der}),
		"base64": []byte(base64Lines(der) + "\r\n"),
	}
	for name, data := range forms {
		t.Run(name, func(t *testing.T) {
			ix, err := LoadIndex(data, &IndexOptions{Anchors: p.anchors, RequireSigned: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(ix.Providers) != 1 || ix.Signature == nil || !ix.Signature.Trusted || !ix.Signature.SignedAt.Equal(t0) {
				t.Fatalf("index %+v", ix)
			}
		})
	}
	// Not trusted by the built-in anchors.
	_, err := LoadIndex(der, nil)
	var se *IndexSignatureError
	if !errors.Is(err, ErrIndexSignature) || !errors.As(err, &se) || !se.Verdict.Has(ReasonUntrusted) {
		t.Errorf("untrusted index: %v", err)
	}
	// Tampered.
	bad := bytes.Clone(der)
	i := bytes.Index(bad, []byte("pec.example.it"))
	bad[i] = 'x'
	if _, err := LoadIndex(bad, &IndexOptions{Anchors: p.anchors}); !errors.As(err, &se) || !se.Verdict.Has(ReasonDigestMismatch) {
		t.Errorf("tampered index: %v", err)
	}
	// Verified at a time the signer had expired.
	if _, err := LoadIndex(der, &IndexOptions{Anchors: p.anchors, At: p.signer.NotAfter.AddDate(0, 0, 1)}); !errors.As(err, &se) || !se.Verdict.Has(ReasonExpired) {
		t.Errorf("expired index signer: %v", err)
	}
	if _, err := LoadIndex(ldif, &IndexOptions{RequireSigned: true}); !errors.Is(err, ErrIndexUnsigned) {
		t.Errorf("unsigned index: %v", err)
	}
	if _, err := LoadIndex([]byte("dn: o=postacert\no: postacert\n"), nil); !errors.Is(err, ErrIndexEmpty) {
		t.Errorf("empty index: %v", err)
	}
}

// TestVerifyMessageIndexDomain checks that VerifyMessage takes the domain from the From header.
func TestVerifyMessageIndexDomain(t *testing.T) {
	p := testPKIOnce()
	ix, err := LoadIndex(indexLDIF("Example", sha1Hex(p.signer.Raw), p.signer.Raw, "pec.example.it"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := testVerifier(t, p, ix)
	raw, _ := signedReceipt(t, p, 4<<10, t0)
	m, err := pec.Parse(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if vd := v.VerifyMessage(context.Background(), m, nil); !vd.Trusted || vd.Provider != "Example" {
		t.Errorf("verdict %+v", vd)
	}
}
