package smime

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/pecarchive/pecarchive/pec"
)

// t0 is the reference signing time of the generated test traffic.
var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

const testFrom = "posta-certificata@pec.example.it"

var (
	testKeys = sync.OnceValue(func() [3]*rsa.PrivateKey {
		var ks [3]*rsa.PrivateKey
		for i := range ks {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			ks[i] = k
		}
		return ks
	})
	testPKIOnce = sync.OnceValue(newTestPKI)
)

// testPKI is a root, a name-constrained intermediate (like AgID CA1, permitting only
// pec.example.it) and a provider signer fitting the PEC profile.
type testPKI struct {
	rootKey, caKey *ecdsa.PrivateKey
	root, ca       *x509.Certificate
	signerKey      *rsa.PrivateKey
	signer         *x509.Certificate
	otherKey       *rsa.PrivateKey // not the signer's key: forgeries
	anchors        *TrustStore     // the root
}

var serial int64 = 1000

func nextSerial() *big.Int {
	serial++
	return big.NewInt(serial)
}

func newTestPKI() *testPKI {
	p := &testPKI{}
	keys := testKeys()
	p.signerKey, p.otherKey = keys[0], keys[1]
	var err error
	if p.rootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if p.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	rootT := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{Country: []string{"IT"}, Organization: []string{"Test Root"}, CommonName: "Test Root CA"},
		NotBefore:             t0.AddDate(-10, 0, 0),
		NotAfter:              t0.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	p.root = mustCert(rootT, rootT, p.rootKey.Public(), p.rootKey)
	caT := &x509.Certificate{
		SerialNumber:            nextSerial(),
		Subject:                 pkix.Name{Country: []string{"IT"}, Organization: []string{"Test Agency"}, CommonName: "Test PEC CA1"},
		NotBefore:               t0.AddDate(-5, 0, 0),
		NotAfter:                t0.AddDate(5, 0, 0),
		IsCA:                    true,
		BasicConstraintsValid:   true,
		MaxPathLenZero:          true,
		KeyUsage:                x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:             []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
		PermittedEmailAddresses: []string{"pec.example.it", "pec.other.example"},
		Policies:                []x509.OID{mustOID(1, 3, 76, 16, 3, 1)},
	}
	p.ca = mustCert(caT, p.root, p.caKey.Public(), p.rootKey)
	p.signer = p.issue(leafTemplate(nil))
	p.anchors = NewTrustStore(p.root)
	return p
}

func mustCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		panic(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

// leafTemplate returns a PEC provider certificate template; edit changes it.
func leafTemplate(edit func(*x509.Certificate)) *x509.Certificate {
	c := &x509.Certificate{
		SerialNumber:   nextSerial(),
		Subject:        pkix.Name{Country: []string{"IT"}, Organization: []string{"Example PEC S.p.A."}, CommonName: "Posta Certificata Example PEC"},
		NotBefore:      t0.AddDate(-1, 0, 0),
		NotAfter:       t0.AddDate(2, 0, 0),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{testFrom},
		Policies:       []x509.OID{mustOID(1, 3, 76, 16, 3, 1, 1)},
		SubjectKeyId:   []byte("test provider key id"),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// issue issues a certificate for the signer key under the intermediate.
func (p *testPKI) issue(tmpl *x509.Certificate) *x509.Certificate {
	return mustCert(tmpl, p.ca, p.signerKey.Public(), p.caKey)
}

// cmsOpts describe a SignedData to build.
type cmsOpts struct {
	hash        crypto.Hash       // default SHA-256
	signingTime time.Time         // zero: no signingTime attribute
	noAttrs     bool              // no signed attributes at all
	opaque      bool              // encapsulate the content
	signer      *x509.Certificate // default the PKI signer
	key         crypto.Signer     // default the PKI signer key
	certs       []*x509.Certificate
	pss         bool
	ski         bool   // identify the signer by subject key identifier
	digest      []byte // messageDigest override
	extraSigner bool   // add a second SignerInfo
}

var (
	oidDataASN1       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedDataASN1 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	hashOIDs          = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 3, 14, 3, 2, 26},
		crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
		crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
	}
	ecdsaOIDs = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 2, 840, 10045, 4, 1},
		crypto.SHA256: {1, 2, 840, 10045, 4, 3, 2},
		crypto.SHA384: {1, 2, 840, 10045, 4, 3, 3},
		crypto.SHA512: {1, 2, 840, 10045, 4, 3, 4},
	}
	oidRSA    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
)

func addAlgID(b *cryptobyte.Builder, o asn1.ObjectIdentifier, null bool) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(o)
		if null {
			b.AddASN1NULL()
		}
	})
}

// buildCMS signs content (already in the canonical form the signature covers) as a PEC provider
// would: SignedData with contentType, signingTime and messageDigest.
func (p *testPKI) buildCMS(tb testing.TB, content []byte, o cmsOpts) []byte {
	tb.Helper()
	if o.hash == 0 {
		o.hash = crypto.SHA256
	}
	if o.signer == nil {
		o.signer = p.signer
	}
	if o.key == nil {
		o.key = p.signerKey
	}
	if o.certs == nil {
		o.certs = []*x509.Certificate{o.signer, p.ca}
	}
	h := o.hash.New()
	h.Write(content)
	digest := h.Sum(nil)
	if o.digest != nil {
		digest = o.digest
	}
	// Signed attributes, DER-sorted.
	var attrs [][]byte
	addAttr := func(typ asn1.ObjectIdentifier, val func(*cryptobyte.Builder)) {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(typ)
			b.AddASN1(cbasn1.SET, val)
		})
		attrs = append(attrs, b.BytesOrPanic())
	}
	addAttr(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidDataASN1) })
	if !o.signingTime.IsZero() {
		addAttr(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}, func(b *cryptobyte.Builder) { b.AddASN1UTCTime(o.signingTime) })
	}
	addAttr(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}, func(b *cryptobyte.Builder) { b.AddASN1OctetString(digest) })
	slices.SortFunc(attrs, bytes.Compare)
	attrContent := bytes.Join(attrs, nil)
	var sb cryptobyte.Builder
	sb.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(attrContent) })
	attrSet := sb.BytesOrPanic()

	toSign := digest
	if !o.noAttrs {
		h := o.hash.New()
		h.Write(attrSet)
		toSign = h.Sum(nil)
	}
	var sigAlg func(*cryptobyte.Builder)
	var sig []byte
	var err error
	switch k := o.key.(type) {
	case *rsa.PrivateKey:
		if o.pss {
			sig, err = rsa.SignPSS(rand.Reader, k, o.hash, toSign, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: o.hash})
			sigAlg = func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidRSAPSS)
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							addAlgID(b, hashOIDs[o.hash], false)
						})
						b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8})
								addAlgID(b, hashOIDs[o.hash], false)
							})
						})
						b.AddASN1(cbasn1.Tag(2).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddASN1Int64(int64(o.hash.Size()))
						})
					})
				})
			}
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, o.hash, toSign)
			sigAlg = func(b *cryptobyte.Builder) { addAlgID(b, oidRSA, true) }
		}
	case *ecdsa.PrivateKey:
		sig, err = ecdsa.SignASN1(rand.Reader, k, toSign)
		sigAlg = func(b *cryptobyte.Builder) { addAlgID(b, ecdsaOIDs[o.hash], false) }
	default:
		tb.Fatalf("unsupported key %T", o.key)
	}
	if err != nil {
		tb.Fatal(err)
	}
	signerInfo := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if o.ski {
				b.AddASN1Int64(3)
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(o.signer.SubjectKeyId) })
			} else {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(o.signer.RawIssuer)
					b.AddASN1BigInt(o.signer.SerialNumber)
				})
			}
			addAlgID(b, hashOIDs[o.hash], true)
			if !o.noAttrs {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddBytes(attrContent)
				})
			}
			sigAlg(b)
			b.AddASN1OctetString(sig)
		})
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oidSignedDataASN1)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { addAlgID(b, hashOIDs[o.hash], true) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(oidDataASN1)
					if o.opaque {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(content)
						})
					}
				})
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					for _, c := range o.certs {
						b.AddBytes(c.Raw)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					signerInfo(b)
					if o.extraSigner {
						signerInfo(b)
					}
				})
			})
		})
	})
	return b.BytesOrPanic()
}

// crlfToLF returns b with CRLF turned into LF (how mailbox files often store messages).
func crlfToLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// detached returns a multipart/signed signature over content (the CRLF signed entity).
func detached(content, cms []byte, micalg string) *pec.Signature {
	return &pec.Signature{Form: pec.SignatureDetached, Content: content, CMS: cms, Micalg: micalg, Protocol: "application/pkcs7-signature"}
}

// testEntity is a small signed entity in the layout of a PEC receipt, CRLF.
func testEntity(size int) []byte {
	var b bytes.Buffer
	b.WriteString("Content-Type: multipart/mixed; boundary=\"----------=_1692373034-75133-538\"\r\n\r\n")
	b.WriteString("------------=_1692373034-75133-538\r\nContent-Type: text/plain; charset=\"iso-8859-1\"\r\n\r\n")
	for b.Len() < size-64 {
		b.WriteString("Ricevuta di avvenuta consegna del messaggio, riga di prova lunga 72 c.\r\n")
	}
	b.WriteString("------------=_1692373034-75133-538--\r\n")
	return b.Bytes()
}

func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 64 {
		out.WriteString(s[:64])
		out.WriteString("\r\n")
		s = s[64:]
	}
	out.WriteString(s)
	return out.String()
}

func mustOID(arcs ...uint64) x509.OID {
	o, err := x509.OIDFromInts(arcs)
	if err != nil {
		panic(err)
	}
	return o
}
