package smime

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pecarchive/pecarchive/pec"
)

func testVerifier(tb testing.TB, p *testPKI, idx *ProviderIndex) *Verifier {
	tb.Helper()
	return mustVerifier(tb, Config{Anchors: p.anchors, Index: idx})
}

// wantReasons fails unless vd carries exactly the given reasons.
func wantReasons(tb testing.TB, vd Verdict, want ...string) {
	tb.Helper()
	slices.Sort(want)
	if !slices.Equal(vd.Reasons, want) {
		tb.Errorf("reasons %v, want %v (details %v)", vd.Reasons, want, vd.Details)
	}
}

func TestSHA256Detached(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(10 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	for _, tc := range []struct {
		name    string
		content []byte
	}{
		{"crlf", content},
		{"lf", crlfToLF(content)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vd := v.Verify(context.Background(), detached(tc.content, cms, "sha-256"), testFrom, nil)
			if !vd.Valid || !vd.Trusted {
				t.Fatalf("verdict %+v", vd)
			}
			wantReasons(t, vd)
			if vd.Digest != "sha256" || !vd.SignedAt.Equal(t0) || !vd.VerifiedAt.Equal(t0) || vd.SignerEmail != testFrom {
				t.Errorf("verdict %+v", vd)
			}
			if len(vd.Chain) != 3 || vd.Chain[0] != p.signer && !vd.Chain[0].Equal(p.signer) || !vd.Chain[2].Equal(p.root) {
				t.Errorf("chain %v", vd.Chain)
			}
			if der := vd.ChainDER(); len(der) != 3 || !bytes.Equal(der[0], p.signer.Raw) {
				t.Errorf("chain DER")
			}
		})
	}
}

func TestTamperedContent(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(2 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	bad := bytes.Clone(content)
	bad[len(bad)/2] ^= 0x01
	vd := v.Verify(context.Background(), detached(bad, cms, "sha-256"), testFrom, nil)
	if !vd.Present || vd.Valid || vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	wantReasons(t, vd, ReasonDigestMismatch)
	// The chain is still judged and reported.
	if len(vd.Chain) != 3 {
		t.Errorf("chain %d", len(vd.Chain))
	}
}

func TestForgedSignature(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(2 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0, key: p.otherKey})
	vd := v.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, nil)
	if vd.Valid || vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	wantReasons(t, vd, ReasonBadSignature)
}

func TestUntrusted(t *testing.T) {
	p := testPKIOnce()
	v := mustVerifier(t, Config{}) // built-in anchors: the test root is unknown
	content := testEntity(1 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	vd := v.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, nil)
	if !vd.Valid || vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	wantReasons(t, vd, ReasonUntrusted)
	if len(vd.Chain) != 2 { // signer and the intermediate carried in the CMS
		t.Errorf("chain %d", len(vd.Chain))
	}
}

func TestValidityWindow(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	for _, tc := range []struct {
		name   string
		signed time.Time
		opts   *VerifyOptions
		want   []string
	}{
		{"inside", t0, nil, nil},
		{"signed-after-expiry", p.signer.NotAfter.Add(time.Hour), nil, []string{ReasonExpired}},
		{"signed-before-issue", p.signer.NotBefore.Add(-time.Hour), nil, []string{ReasonNotYetValid}},
		{"at-override-expired", t0, &VerifyOptions{At: p.signer.NotAfter.Add(time.Second)}, []string{ReasonExpired}},
		{"at-override-ok", t0, &VerifyOptions{At: p.signer.NotAfter.Add(-time.Second)}, nil},
		// The chain cache must not answer for a time outside the window it was validated for.
		{"inside-again", t0.Add(time.Hour), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cms := p.buildCMS(t, content, cmsOpts{signingTime: tc.signed})
			vd := v.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, tc.opts)
			wantReasons(t, vd, tc.want...)
			if vd.Trusted != (len(tc.want) == 0) || !vd.Valid {
				t.Errorf("verdict %+v", vd)
			}
		})
	}
}

// TestIntermediateValidity covers an intermediate outside its validity period while the leaf is
// inside its own: crypto/x509 hides this behind an unknown-authority error, which the verifier
// diagnoses.
func TestIntermediateValidity(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	long := p.issue(leafTemplate(func(c *x509.Certificate) {
		c.NotBefore = p.ca.NotBefore.AddDate(-1, 0, 0)
		c.NotAfter = p.ca.NotAfter.AddDate(1, 0, 0)
	}))
	for _, tc := range []struct {
		name string
		at   time.Time
		want string
	}{
		{"before-intermediate", p.ca.NotBefore.Add(-time.Hour), ReasonNotYetValid},
		{"after-intermediate", p.ca.NotAfter.Add(time.Hour), ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cms := p.buildCMS(t, content, cmsOpts{signingTime: tc.at, signer: long})
			vd := v.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, nil)
			wantReasons(t, vd, tc.want)
			if len(vd.Chain) != 3 {
				t.Errorf("chain %d", len(vd.Chain))
			}
		})
	}
}

func TestReceivedAtBound(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	sig := detached(content, cms, "sha-256")

	recv := t0.Add(-time.Hour)
	vd := v.Verify(context.Background(), sig, testFrom, &VerifyOptions{ReceivedAt: recv})
	wantReasons(t, vd, ReasonSignedAfterReceipt)
	if !vd.Trusted || !vd.VerifiedAt.Equal(recv) || !vd.SignedAt.Equal(t0) {
		t.Errorf("verdict %+v", vd)
	}
	// Within the skew: no reason, verified at the signing time.
	vd = v.Verify(context.Background(), sig, testFrom, &VerifyOptions{ReceivedAt: t0.Add(-4 * time.Minute)})
	wantReasons(t, vd)
	if !vd.VerifiedAt.Equal(t0) {
		t.Errorf("verified at %v", vd.VerifiedAt)
	}
	// Received after the certificate expired: still verified as of signing time.
	vd = v.Verify(context.Background(), sig, testFrom, &VerifyOptions{ReceivedAt: p.signer.NotAfter.AddDate(1, 0, 0)})
	wantReasons(t, vd)
}

func TestNoSigningTime(t *testing.T) {
	p := testPKIOnce()
	now := t0.Add(48 * time.Hour)
	v := mustVerifier(t, Config{Anchors: p.anchors, Now: func() time.Time { return now }})
	content := testEntity(1 << 10)
	cms := p.buildCMS(t, content, cmsOpts{})
	sig := detached(content, cms, "sha-256")
	vd := v.Verify(context.Background(), sig, testFrom, nil)
	wantReasons(t, vd, ReasonNoSigningTime)
	if !vd.Trusted || !vd.VerifiedAt.Equal(now) || !vd.SignedAt.IsZero() {
		t.Errorf("verdict %+v", vd)
	}
	recv := t0.Add(time.Hour)
	vd = v.Verify(context.Background(), sig, testFrom, &VerifyOptions{ReceivedAt: recv})
	if !vd.VerifiedAt.Equal(recv) {
		t.Errorf("verified at %v, want %v", vd.VerifiedAt, recv)
	}
}

func TestProfile(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	for _, tc := range []struct {
		name string
		edit func(*x509.Certificate)
		from string
		want []string
	}{
		{"ok", nil, testFrom, nil},
		{"from-case-insensitive", nil, "Posta-Certificata@PEC.example.IT", nil},
		{"from-header-value", nil, `"Per conto di: mario@pec.example.it" <posta-certificata@pec.example.it>`, nil},
		{"wrong-from", nil, "posta-certificata@pec.other.example", []string{ReasonEmailMismatch}},
		{"empty-from", nil, "", []string{ReasonEmailMismatch}},
		{"wrong-san", func(c *x509.Certificate) { c.EmailAddresses = []string{"altro@pec.example.it"} }, testFrom, []string{ReasonEmailMismatch}},
		{"no-san", func(c *x509.Certificate) { c.EmailAddresses = nil }, testFrom, []string{ReasonNoEmail}},
		{"key-usage", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment }, testFrom, []string{ReasonBadKeyUsage}},
		{"no-key-usage", func(c *x509.Certificate) { c.KeyUsage = 0 }, testFrom, []string{ReasonBadKeyUsage}},
		{"ca-signer", func(c *x509.Certificate) { c.IsCA, c.BasicConstraintsValid = true, true }, testFrom, []string{ReasonIsCA}},
		{"bad-policy", func(c *x509.Certificate) { c.Policies = []x509.OID{mustOID(1, 2, 3, 4)} }, testFrom, []string{ReasonBadPolicy}},
		{"no-policy", func(c *x509.Certificate) { c.Policies = nil }, testFrom, nil},
		{"eku", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }, testFrom, []string{ReasonBadExtKeyUsage}},
		{"name-constraints", func(c *x509.Certificate) { c.EmailAddresses = []string{"posta-certificata@evil.example"} },
			"posta-certificata@evil.example", []string{ReasonNameConstraints}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf := p.signer
			if tc.edit != nil {
				leaf = p.issue(leafTemplate(tc.edit))
			}
			cms := p.buildCMS(t, content, cmsOpts{signingTime: t0, signer: leaf})
			vd := v.Verify(context.Background(), detached(content, cms, "sha-256"), tc.from, nil)
			wantReasons(t, vd, tc.want...)
			if !vd.Valid || vd.Trusted != (len(tc.want) == 0) {
				t.Errorf("verdict %+v", vd)
			}
		})
	}
}

func TestAlgorithms(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecLeaf := mustCert(leafTemplate(nil), p.ca, ecKey.Public(), p.caKey)
	for _, tc := range []struct {
		name   string
		o      cmsOpts
		micalg string
		digest string
		want   []string
	}{
		{"sha1", cmsOpts{hash: crypto.SHA1}, "sha1", "sha1", []string{ReasonWeakDigestSHA1}},
		{"sha384", cmsOpts{hash: crypto.SHA384}, "sha-384", "sha384", nil},
		{"sha512", cmsOpts{hash: crypto.SHA512}, "sha-512", "sha512", nil},
		{"micalg-mismatch", cmsOpts{}, "sha1", "sha256", []string{ReasonMicalgMismatch}},
		{"micalg-list", cmsOpts{}, "sha1, sha-256", "sha256", nil},
		{"micalg-absent", cmsOpts{}, "", "sha256", nil},
		{"pss", cmsOpts{pss: true}, "sha-256", "sha256", nil},
		{"ecdsa", cmsOpts{key: ecKey, signer: ecLeaf}, "sha-256", "sha256", nil},
		{"ski", cmsOpts{ski: true}, "sha-256", "sha256", nil},
		{"no-signed-attrs", cmsOpts{noAttrs: true}, "sha-256", "sha256", []string{ReasonNoSigningTime}},
		{"no-signed-attrs-forged", cmsOpts{noAttrs: true, key: p.otherKey}, "sha-256", "sha256", []string{ReasonNoSigningTime, ReasonBadSignature}},
		{"multiple-signers", cmsOpts{extraSigner: true}, "sha-256", "sha256", []string{ReasonMultipleSigners}},
		{"wrong-digest-attr", cmsOpts{digest: bytes.Repeat([]byte{1}, 32)}, "sha-256", "sha256", []string{ReasonDigestMismatch}},
		{"no-signer-cert", cmsOpts{certs: []*x509.Certificate{p.ca}}, "sha-256", "sha256", []string{ReasonNoSignerCertificate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if !o.noAttrs {
				o.signingTime = t0
			}
			cms := p.buildCMS(t, content, o)
			opts := &VerifyOptions{ReceivedAt: t0}
			vd := v.Verify(context.Background(), detached(crlfToLF(content), cms, tc.micalg), testFrom, opts)
			wantReasons(t, vd, tc.want...)
			if vd.Digest != tc.digest {
				t.Errorf("digest %q", vd.Digest)
			}
			trusted := true
			for _, r := range tc.want {
				trusted = trusted && IsWarning(r)
			}
			if vd.Trusted != trusted {
				t.Errorf("trusted %v, want %v", vd.Trusted, trusted)
			}
		})
	}
}

func TestOpaque(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(3 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0, opaque: true})
	sig := &pec.Signature{Form: pec.SignatureOpaque, CMS: cms, Protocol: "application/pkcs7-mime"}
	vd := v.Verify(context.Background(), sig, testFrom, nil)
	if !vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	wantReasons(t, vd)

	// Tampered encapsulated content.
	i := bytes.Index(cms, content[100:140])
	bad := bytes.Clone(cms)
	bad[i] ^= 0x20
	vd = v.Verify(context.Background(), &pec.Signature{Form: pec.SignatureOpaque, CMS: bad}, testFrom, nil)
	wantReasons(t, vd, ReasonDigestMismatch)

	// A detached CMS presented as opaque has no content.
	det := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	vd = v.Verify(context.Background(), &pec.Signature{Form: pec.SignatureOpaque, CMS: det}, testFrom, nil)
	wantReasons(t, vd, ReasonMalformedCMS)
}

// toBER re-encodes the outer ContentInfo and SignedData with indefinite lengths, as streaming
// encoders do; the fast DER parser refuses it and the pkcs7 fallback must take over.
func toBER(tb testing.TB, der []byte) []byte {
	tb.Helper()
	var ci asn1.RawValue
	if _, err := asn1.Unmarshal(der, &ci); err != nil {
		tb.Fatal(err)
	}
	var typ asn1.ObjectIdentifier
	rest, err := asn1.Unmarshal(ci.Bytes, &typ)
	if err != nil {
		tb.Fatal(err)
	}
	var explicit asn1.RawValue
	if _, err := asn1.Unmarshal(rest, &explicit); err != nil {
		tb.Fatal(err)
	}
	oidDER, _ := asn1.Marshal(typ)
	out := []byte{0x30, 0x80}
	out = append(out, oidDER...)
	out = append(out, 0xa0, 0x80)
	out = append(out, explicit.Bytes...) // the SignedData, DER inside
	out = append(out, 0, 0, 0, 0)
	return out
}

func TestBERFallback(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(2 << 10)
	cms := toBER(t, p.buildCMS(t, content, cmsOpts{signingTime: t0}))
	if _, err := parseCMSFast(cms, 32); err == nil {
		t.Fatal("fast parser accepted indefinite lengths")
	}
	vd := v.Verify(context.Background(), detached(crlfToLF(content), cms, "sha-256"), testFrom, nil)
	if !vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	bad := bytes.Clone(content)
	bad[10] ^= 1
	vd = v.Verify(context.Background(), detached(bad, cms, "sha-256"), testFrom, nil)
	wantReasons(t, vd, ReasonDigestMismatch)
	forged := toBER(t, p.buildCMS(t, content, cmsOpts{signingTime: t0, key: p.otherKey}))
	vd = v.Verify(context.Background(), detached(content, forged, "sha-256"), testFrom, nil)
	wantReasons(t, vd, ReasonBadSignature)
}

// TestPKCS7Interop verifies signatures made by the pkcs7 library (an independent encoder).
func TestPKCS7Interop(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(2 << 10)
	for _, tc := range []struct {
		name   string
		digest asn1.ObjectIdentifier
		want   string
	}{
		{"sha1", pkcs7.OIDDigestAlgorithmSHA1, "sha1"},
		{"sha256", pkcs7.OIDDigestAlgorithmSHA256, "sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sd, err := pkcs7.NewSignedData(content)
			if err != nil {
				t.Fatal(err)
			}
			sd.SetDigestAlgorithm(tc.digest)
			if err := sd.AddSignerChain(p.signer, p.signerKey, []*x509.Certificate{p.ca}, pkcs7.SignerInfoConfig{}); err != nil {
				t.Fatal(err)
			}
			sd.Detach()
			cms, err := sd.Finish()
			if err != nil {
				t.Fatal(err)
			}
			// The library stamps the current time as signingTime: verify at t0 explicitly.
			vd := v.Verify(context.Background(), detached(content, cms, ""), testFrom, &VerifyOptions{At: t0})
			if !vd.Valid || !vd.Trusted || vd.Digest != tc.want {
				t.Fatalf("verdict %+v", vd)
			}
			if time.Since(vd.SignedAt) > time.Minute {
				t.Errorf("signed at %v", vd.SignedAt)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	for _, tc := range []struct {
		name string
		cms  []byte
	}{
		{"truncated", cms[:len(cms)/2]},
		{"truncated-end", cms[:len(cms)-1]},
		{"garbage", []byte("not a CMS blob at all")},
		{"trailing", append(bytes.Clone(cms), 'x')},
		{"empty-sequence", []byte{0x30, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vd := v.Verify(context.Background(), detached(content, tc.cms, "sha-256"), testFrom, nil)
			if !vd.Present || vd.Valid || vd.Trusted {
				t.Errorf("verdict %+v", vd)
			}
			wantReasons(t, vd, ReasonMalformedCMS)
		})
	}
	small := mustVerifier(t, Config{Anchors: p.anchors, MaxCMSSize: 100})
	vd := small.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, nil)
	wantReasons(t, vd, ReasonMalformedCMS)
	few := mustVerifier(t, Config{Anchors: p.anchors, MaxCerts: 1})
	vd = few.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, nil)
	wantReasons(t, vd, ReasonMalformedCMS)
}

func TestNoSignature(t *testing.T) {
	v := mustVerifier(t, Config{})
	for _, vd := range []Verdict{
		v.VerifyMessage(context.Background(), &pec.Message{}, nil),
		v.VerifyMessage(context.Background(), nil, nil),
		v.Verify(context.Background(), &pec.Signature{}, "x@y", nil),
	} {
		if vd.Present || vd.Valid || vd.Trusted || vd.Reasons == nil {
			t.Errorf("verdict %+v", vd)
		}
		wantReasons(t, vd, ReasonNoSignature)
	}
}

func TestCanceled(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	vd := v.Verify(ctx, detached(content, cms, "sha-256"), testFrom, nil)
	if !vd.Valid || vd.Trusted {
		t.Errorf("verdict %+v", vd)
	}
	wantReasons(t, vd, ReasonCanceled)
}

func TestNonCanonicalContent(t *testing.T) {
	// A signer that signed bare LFs (binary content): the signature covers the bytes as stored.
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := crlfToLF(testEntity(1 << 10))
	for _, noAttrs := range []bool{false, true} {
		o := cmsOpts{signingTime: t0, noAttrs: noAttrs}
		if noAttrs {
			o.signingTime = time.Time{}
		}
		cms := p.buildCMS(t, content, o)
		vd := v.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, &VerifyOptions{At: t0})
		if !vd.Valid || !vd.Trusted || !vd.Has(ReasonNonCanonicalContent) {
			t.Errorf("noAttrs=%v: verdict %+v", noAttrs, vd)
		}
	}
}

func TestVerifyParsedMessage(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	raw, _ := signedReceipt(t, p, 10<<10, t0)
	for _, form := range [][]byte{raw, crlfToLF(raw)} {
		m, err := pec.Parse(form, nil)
		if err != nil {
			t.Fatal(err)
		}
		vd := v.VerifyMessage(context.Background(), m, nil)
		if !vd.Trusted {
			t.Fatalf("verdict %+v (problems %v)", vd, m.Problems)
		}
	}
}

// signedReceipt returns a raw multipart/signed message (CRLF) in the layout of a real PEC receipt,
// of about size bytes, signed with SHA-256 by the test provider.
func signedReceipt(tb testing.TB, p *testPKI, size int, at time.Time) (raw, content []byte) {
	tb.Helper()
	content = testEntity(size - 3<<10)
	cms := p.buildCMS(tb, content, cmsOpts{signingTime: at})
	var b bytes.Buffer
	b.WriteString("From: posta-certificata@pec.example.it\r\nTo: mario@pec.example.it\r\n")
	b.WriteString("Subject: CONSEGNA: prova\r\nX-Ricevuta: avvenuta-consegna\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=\"sha-256\"; boundary=\"B94FD2A89E86\"\r\n\r\n")
	b.WriteString("This is an S/MIME signed message\r\n\r\n--B94FD2A89E86\r\n")
	b.Write(content)
	b.WriteString("\r\n--B94FD2A89E86\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n")
	enc := base64Lines(cms)
	b.WriteString(enc)
	b.WriteString("\r\n--B94FD2A89E86--\r\n")
	return b.Bytes(), content
}

func TestChainCacheWindow(t *testing.T) {
	p := testPKIOnce()
	v := testVerifier(t, p, nil)
	content := testEntity(1 << 10)
	verify := func(at time.Time) Verdict {
		cms := p.buildCMS(t, content, cmsOpts{signingTime: at})
		return v.Verify(context.Background(), detached(content, cms, "sha-256"), testFrom, nil)
	}
	if vd := verify(t0); !vd.Trusted {
		t.Fatalf("verdict %+v", vd)
	}
	if vd := verify(p.signer.NotAfter.Add(-time.Minute)); !vd.Trusted || v.chains.misses.Load() != 1 {
		t.Fatalf("inside the window: trusted %v, %d misses", vd.Trusted, v.chains.misses.Load())
	}
	if vd := verify(p.signer.NotAfter.Add(time.Minute)); vd.Trusted || !vd.Has(ReasonExpired) || v.chains.misses.Load() != 2 {
		t.Fatalf("outside the window: %v, %d misses", vd.Reasons, v.chains.misses.Load())
	}
	// Another intermediate set is another cache key.
	cms := p.buildCMS(t, content, cmsOpts{signingTime: t0, certs: []*x509.Certificate{p.signer, p.ca, p.root}})
	if vd := v.Verify(context.Background(), detached(content, cms, ""), testFrom, nil); !vd.Trusted || v.chains.misses.Load() != 3 {
		t.Fatalf("other certificates: %v, %d misses", vd.Reasons, v.chains.misses.Load())
	}
}

func TestConcurrent(t *testing.T) {
	p := testPKIOnce()
	v := mustVerifier(t, Config{Anchors: p.anchors, CacheSize: 2})
	content := testEntity(1 << 10)
	var sigs []*pec.Signature
	for i := 0; i < 4; i++ {
		leaf := p.issue(leafTemplate(nil))
		sigs = append(sigs, detached(content, p.buildCMS(t, content, cmsOpts{signingTime: t0.Add(time.Duration(i) * time.Hour), signer: leaf}), ""))
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			var err error
			for i := 0; i < 50; i++ {
				if vd := v.Verify(context.Background(), sigs[(g+i)%len(sigs)], testFrom, nil); !vd.Trusted {
					err = fmt.Errorf("verdict %+v", vd)
				}
			}
			done <- err
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if n := v.certs.ll.Len(); n > 2 {
		t.Errorf("certificate cache holds %d entries over its bound", n)
	}
}
