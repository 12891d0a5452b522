package pectest

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// DefaultTime is the base time used when none is given: certificates are issued around it and
// messages are dated from it (17:37:13 in Rome, summer time, like the real Aruba envelope).
var DefaultTime = time.Date(2026, 5, 18, 15, 37, 13, 0, time.UTC)

// PEC certificate policy OIDs (AgID): the intermediate carries PolicyCA, provider signers PolicySigner.
var (
	PolicyCA     = asn1.ObjectIdentifier{1, 3, 76, 16, 3, 1}
	PolicySigner = asn1.ObjectIdentifier{1, 3, 76, 16, 3, 1, 1}
)

var (
	oidCertificatePolicies = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidNameConstraints     = asn1.ObjectIdentifier{2, 5, 29, 30}
	oidCPS                 = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 2, 1}
	oidCountry             = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidState               = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidLocality            = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidOrganization        = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit             = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCommonName          = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// cpsURL is the CPS qualifier written in the certificate policies, as in the real certificates.
const cpsURL = "http://www.agid.example/certificati-firma-pec"

// ProviderInfo describes a test PEC provider (gestore).
type ProviderInfo struct {
	// Name is the gestore-emittente written in daticert.xml, for example "EXAMPLE PEC S.p.A.".
	Name string
	// Organization is the O of the signer certificate subject, for example "Example PEC S.p.A.".
	Organization string
	// State and Locality complete the subject (ST, L).
	State, Locality string
	// Domain is the provider domain: the signer's address is posta-certificata@Domain and PEC
	// identificativi end in @Domain.
	Domain string
	// ManagedDomains are the mailbox domains the provider serves (IGPEC managedDomains); Domain
	// is always one of them.
	ManagedDomains []string
}

// Default providers. ProviderA sends, ProviderB receives in conversations by default.
var (
	ProviderA = ProviderInfo{
		Name: "EXAMPLE PEC S.p.A.", Organization: "Example PEC S.p.A.",
		State: "Bergamo", Locality: "Ponte San Pietro",
		Domain: "pec.example.it", ManagedDomains: []string{"pec.example.it", "pec.ordine.example.it"},
	}
	ProviderB = ProviderInfo{
		Name: "ESEMPIO POSTA S.p.A.", Organization: "Esempio Posta S.p.A.",
		State: "Roma", Locality: "Roma",
		Domain: "pec.esempio.it", ManagedDomains: []string{"pec.esempio.it", "pec.studio.esempio.it"},
	}
	// ProviderC is listed in the intermediate's name constraints but otherwise unused by default;
	// the wrong-SAN signer claims its address.
	ProviderC = ProviderInfo{
		Name: "TERZO GESTORE S.r.l.", Organization: "Terzo Gestore S.r.l.",
		State: "Milano", Locality: "Milano",
		Domain: "pec.terzo.it", ManagedDomains: []string{"pec.terzo.it"},
	}
)

// CAOptions configure [NewCA]. A nil *CAOptions means the defaults.
type CAOptions struct {
	// Time is the base time the hierarchy is built around (default [DefaultTime]). The root is
	// valid from 12 years before to 7 years after it, the intermediate from 2 years before to 7
	// years after it.
	Time time.Time
	// Providers are the providers whose domains and organisations the intermediate's name
	// constraints permit (default ProviderA, ProviderB, ProviderC).
	Providers []ProviderInfo
	// Untrusted builds a look-alike hierarchy (same names, other keys): its root is not the one
	// verifiers are given.
	Untrusted bool
}

// CA is a test PEC trust hierarchy: a self-signed root (like Actalis Authentication Root CA) and
// a name-constrained intermediate (like AgID CA1) that issues the provider signer certificates.
type CA struct {
	Root            *x509.Certificate
	RootKey         *rsa.PrivateKey
	Intermediate    *x509.Certificate
	IntermediateKey *rsa.PrivateKey
	// Providers are the providers the intermediate's name constraints permit.
	Providers []ProviderInfo
	// Time is the base time.
	Time time.Time

	seed      int64
	untrusted bool
}

// NewCA builds the hierarchy for seed. Keys are derived from the seed (and cached), so NewCA is
// cheap after the first call for a seed.
func NewCA(seed int64, opts *CAOptions) (*CA, error) {
	var o CAOptions
	if opts != nil {
		o = *opts
	}
	if o.Time.IsZero() {
		o.Time = DefaultTime
	}
	o.Time = o.Time.UTC().Truncate(time.Second)
	if len(o.Providers) == 0 {
		o.Providers = []ProviderInfo{ProviderA, ProviderB, ProviderC}
	}
	for _, p := range o.Providers {
		if err := p.check(); err != nil {
			return nil, err
		}
	}
	prefix := "ca"
	if o.Untrusted {
		prefix = "untrusted-ca"
	}
	rootKey, err := Key(seed, prefix+"/root")
	if err != nil {
		return nil, err
	}
	intKey, err := Key(seed, prefix+"/intermediate")
	if err != nil {
		return nil, err
	}
	ca := &CA{RootKey: rootKey, IntermediateKey: intKey, Providers: o.Providers, Time: o.Time, seed: seed, untrusted: o.Untrusted}

	rootName := rdnSequence(
		[2]string{"C", "IT"}, [2]string{"L", "Milano"},
		[2]string{"O", "Esempio Trust S.p.A./00000000000"},
		[2]string{"CN", "Esempio Authentication Root CA (TEST)"})
	rootSKI := ski(&rootKey.PublicKey)
	rootTmpl := &x509.Certificate{
		SerialNumber:          serial(seed, prefix+"/root"),
		RawSubject:            rootName,
		NotBefore:             o.Time.AddDate(-12, 0, 0),
		NotAfter:              o.Time.AddDate(7, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          rootSKI,
		AuthorityKeyId:        rootSKI,
	}
	if ca.Root, err = createCert(rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey); err != nil {
		return nil, err
	}

	nc, err := nameConstraints(o.Providers)
	if err != nil {
		return nil, err
	}
	pol, err := policies(PolicyCA)
	if err != nil {
		return nil, err
	}
	intTmpl := &x509.Certificate{
		SerialNumber: serial(seed, prefix+"/intermediate"),
		RawSubject: rdnSequence(
			[2]string{"C", "IT"}, [2]string{"L", "Roma"},
			[2]string{"O", "Agenzia di Esempio per la PEC"},
			[2]string{"OU", "Area Servizi di Posta Certificata"},
			[2]string{"CN", "Esempio PEC CA1 (TEST)"}),
		NotBefore:             o.Time.AddDate(-2, 0, 0),
		NotAfter:              o.Time.AddDate(7, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
		SubjectKeyId:          ski(&intKey.PublicKey),
		OCSPServer:            []string{"http://ocsp.trust.esempio.example/VA/AUTH-ROOT"},
		CRLDistributionPoints: []string{"http://crl.trust.esempio.example/Repository/AUTH-ROOT/getLastCRL"},
		ExtraExtensions:       []pkix.Extension{nc, pol},
	}
	if ca.Intermediate, err = createCert(intTmpl, ca.Root, &intKey.PublicKey, rootKey); err != nil {
		return nil, err
	}
	return ca, nil
}

// Seed returns the seed the CA was built from.
func (ca *CA) Seed() int64 { return ca.seed }

// Untrusted reports whether this is a look-alike hierarchy whose root verifiers do not trust.
func (ca *CA) Untrusted() bool { return ca.untrusted }

// Roots returns a pool holding only the root: the trust store a verifier gets.
func (ca *CA) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// Intermediates returns a pool holding the intermediate.
func (ca *CA) Intermediates() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Intermediate)
	return p
}

// RootPEM returns the root certificate in PEM.
func (ca *CA) RootPEM() []byte { return certPEM(ca.Root) }

// IntermediatePEM returns the intermediate certificate in PEM.
func (ca *CA) IntermediatePEM() []byte { return certPEM(ca.Intermediate) }

// ChainPEM returns the intermediate followed by the root, in PEM.
func (ca *CA) ChainPEM() []byte { return append(ca.IntermediatePEM(), ca.RootPEM()...) }

// Provider returns the ProviderInfo for domain (the provider domain or one of its managed
// domains), or false.
func (ca *CA) Provider(domain string) (ProviderInfo, bool) {
	domain = strings.ToLower(domain)
	for _, p := range ca.Providers {
		if p.Domain == domain || slices.Contains(p.ManagedDomains, domain) {
			return p, true
		}
	}
	return ProviderInfo{}, false
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func (p ProviderInfo) check() error {
	if p.Name == "" || p.Domain == "" || p.Organization == "" {
		return fmt.Errorf("pectest: provider needs Name, Organization and Domain: %+v", p)
	}
	if strings.ContainsAny(p.Domain, "@ \t\r\n") {
		return fmt.Errorf("pectest: bad provider domain %q", p.Domain)
	}
	return nil
}

func (p ProviderInfo) withDefaults() ProviderInfo {
	if p.State == "" {
		p.State = "Roma"
	}
	if p.Locality == "" {
		p.Locality = "Roma"
	}
	p.Domain = strings.ToLower(p.Domain)
	if !slices.Contains(p.ManagedDomains, p.Domain) {
		p.ManagedDomains = append([]string{p.Domain}, p.ManagedDomains...)
	}
	return p
}

// orgName is the C, ST, L, O prefix of a provider's signer subject (also a directoryName
// constraint of the intermediate, as in the real AgID CA1).
func (p ProviderInfo) orgName(cn string) []byte {
	p = p.withDefaults()
	attrs := [][2]string{{"C", "IT"}, {"ST", p.State}, {"L", p.Locality}, {"O", p.Organization}}
	if cn != "" {
		attrs = append(attrs, [2]string{"CN", cn})
	}
	return rdnSequence(attrs...)
}

// Defect is a deliberate flaw of a provider signer, for negative tests.
type Defect int

const (
	DefectNone Defect = iota
	// DefectExpired: the signer certificate expired a year before the signing time.
	DefectExpired
	// DefectNotYetValid: the signer certificate becomes valid a year after the signing time.
	DefectNotYetValid
	// DefectUntrusted: the signer chains to a look-alike root (same names, other keys) that is
	// not [CA.Root].
	DefectUntrusted
	// DefectWrongSAN: the subjectAltName is another provider's posta-certificata address
	// (permitted by the name constraints, so the chain verifies, but it does not match From).
	DefectWrongSAN
	// DefectOutsideConstraints: the subjectAltName is in a domain the intermediate does not
	// permit, so chain building fails on name constraints.
	DefectOutsideConstraints
	// DefectCA: the signer has BasicConstraints CA:TRUE (and keyCertSign).
	DefectCA
	// DefectNoDigitalSignature: KeyUsage is nonRepudiation only, without digitalSignature.
	DefectNoDigitalSignature
	// DefectForged: the certificate is the good one but the CMS is signed by another key.
	DefectForged
)

var defectNames = map[Defect]string{
	DefectNone: "none", DefectExpired: "expired", DefectNotYetValid: "not-yet-valid",
	DefectUntrusted: "untrusted", DefectWrongSAN: "wrong-san", DefectOutsideConstraints: "outside-constraints",
	DefectCA: "ca-flag", DefectNoDigitalSignature: "no-digital-signature", DefectForged: "forged",
}

// Defects lists every defect other than DefectNone.
var Defects = []Defect{DefectExpired, DefectNotYetValid, DefectUntrusted, DefectWrongSAN,
	DefectOutsideConstraints, DefectCA, DefectNoDigitalSignature, DefectForged}

func (d Defect) String() string {
	if s, ok := defectNames[d]; ok {
		return s
	}
	return fmt.Sprintf("Defect(%d)", int(d))
}

// Signer is a provider signing identity: a key, its certificate and the intermediates to ship
// in the CMS (signer first, then the intermediate, as real providers do).
type Signer struct {
	Cert  *x509.Certificate
	Key   *rsa.PrivateKey
	Chain []*x509.Certificate // intermediates, not including Cert or the root
	// Root is the root the chain ends at (not the verifiers' root for DefectUntrusted).
	Root *x509.Certificate
	// SignKey, when not nil, is the key actually used to sign (DefectForged).
	SignKey *rsa.PrivateKey
	Defect  Defect
}

// Email returns the signer certificate's first rfc822Name.
func (s *Signer) Email() string {
	if len(s.Cert.EmailAddresses) == 0 {
		return ""
	}
	return s.Cert.EmailAddresses[0]
}

// ChainPEM returns the signer certificate followed by its intermediates, in PEM.
func (s *Signer) ChainPEM() []byte {
	var b []byte
	b = append(b, certPEM(s.Cert)...)
	for _, c := range s.Chain {
		b = append(b, certPEM(c)...)
	}
	return b
}

// NewSigner issues a signer certificate for provider p with the real PEC profile (subject with
// the provider organisation, rfc822Name posta-certificata@<domain>, KeyUsage digitalSignature
// critical, no BasicConstraints, policy 1.3.76.16.3.1.1 with CPS, EKU emailProtection, OCSP and
// CRL locations, RSA-2048, three years from a year before the base time), altered by defect.
func (ca *CA) NewSigner(p ProviderInfo, defect Defect) (*Signer, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	if defect == DefectUntrusted && !ca.untrusted {
		rogue, err := NewCA(ca.seed, &CAOptions{Time: ca.Time, Providers: ca.Providers, Untrusted: true})
		if err != nil {
			return nil, err
		}
		return rogue.NewSigner(p, defect)
	}
	label := "signer/" + p.Domain
	if ca.untrusted {
		label = "untrusted-" + label
	}
	key, err := Key(ca.seed, label)
	if err != nil {
		return nil, err
	}
	notBefore := ca.Time.AddDate(-1, 0, 0)
	notAfter := notBefore.AddDate(3, 0, 0)
	email := "posta-certificata@" + p.Domain
	ku := x509.KeyUsageDigitalSignature
	var isCA bool
	switch defect {
	case DefectExpired:
		notBefore = ca.Time.AddDate(-4, 0, 0)
		notAfter = ca.Time.AddDate(-1, 0, 0)
	case DefectNotYetValid:
		notBefore = ca.Time.AddDate(1, 0, 0)
		notAfter = notBefore.AddDate(3, 0, 0)
	case DefectWrongSAN:
		other := ProviderC.Domain
		for _, q := range ca.Providers {
			if q.Domain != p.Domain {
				other = q.Domain
				break
			}
		}
		email = "posta-certificata@" + other
	case DefectOutsideConstraints:
		email = "posta-certificata@pec.non-autorizzato.example"
	case DefectCA:
		isCA = true
		ku |= x509.KeyUsageCertSign
	case DefectNoDigitalSignature:
		ku = x509.KeyUsageContentCommitment
	}
	pol, err := policies(PolicySigner)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(ca.seed, fmt.Sprintf("%s/%s/%d", label, p.Domain, defect)),
		RawSubject:            p.orgName("Posta Certificata " + strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(p.Organization, " S.p.A."), " S.r.l."))),
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              ku,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses:        []string{email},
		SubjectKeyId:          ski(&key.PublicKey),
		OCSPServer:            []string{"http://ca1.pec.esempio.example/OCSP"},
		CRLDistributionPoints: []string{"http://ca1.pec.esempio.example/CRL"},
		ExtraExtensions:       []pkix.Extension{pol},
	}
	if isCA {
		tmpl.BasicConstraintsValid = true
		tmpl.IsCA = true
	}
	cert, err := createCert(tmpl, ca.Intermediate, &key.PublicKey, ca.IntermediateKey)
	if err != nil {
		return nil, err
	}
	s := &Signer{Cert: cert, Key: key, Chain: []*x509.Certificate{ca.Intermediate}, Root: ca.Root, Defect: defect}
	if defect == DefectForged {
		if s.SignKey, err = Key(ca.seed, "forger"); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func createCert(tmpl, parent *x509.Certificate, pub *rsa.PublicKey, priv *rsa.PrivateKey) (*x509.Certificate, error) {
	tmpl.SignatureAlgorithm = x509.SHA256WithRSA
	der, err := x509.CreateCertificate(zeroReader{}, tmpl, parent, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("pectest: create certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// zeroReader is a deterministic reader: RSA PKCS#1 v1.5 signing does not use randomness, and
// every other random choice (serials) is made explicitly.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// serial derives a positive 16-byte serial number from the seed and a label.
func serial(seed int64, label string) *big.Int {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	h := sha256.Sum256(append(append([]byte("pectest serial\x00"), b[:]...), label...))
	s := h[:16]
	s[0] &= 0x7f
	s[0] |= 0x40
	return new(big.Int).SetBytes(s)
}

// ski is the RFC 5280 method 1 subject key identifier.
func ski(pub *rsa.PublicKey) []byte {
	h := sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
	return h[:]
}

var attrOIDs = map[string]asn1.ObjectIdentifier{
	"C": oidCountry, "ST": oidState, "L": oidLocality, "O": oidOrganization, "OU": oidOrgUnit, "CN": oidCommonName,
}

// rdnSequence encodes a distinguished name with one attribute per RDN, C as PrintableString and
// the others as UTF8String, as in the real certificates.
func rdnSequence(attrs ...[2]string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(attrOIDs[a[0]])
					tag := cbasn1.UTF8String
					if a[0] == "C" {
						tag = cbasn1.PrintableString
					}
					b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(a[1])) })
				})
			})
		}
	})
	return b.BytesOrPanic()
}

// policies encodes a certificatePolicies extension with one policy and a CPS qualifier.
func policies(oid asn1.ObjectIdentifier) (pkix.Extension, error) {
	type qualifier struct {
		ID  asn1.ObjectIdentifier
		CPS string `asn1:"ia5"`
	}
	type info struct {
		Policy     asn1.ObjectIdentifier
		Qualifiers []qualifier
	}
	v, err := asn1.Marshal([]info{{Policy: oid, Qualifiers: []qualifier{{ID: oidCPS, CPS: cpsURL}}}})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("pectest: policies: %w", err)
	}
	return pkix.Extension{Id: oidCertificatePolicies, Value: v}, nil
}

// nameConstraints encodes the intermediate's name constraints like AgID CA1: permitted
// rfc822Name host constraints, dNSName and directoryName (C, ST, L, O) for every provider,
// excluded all IPv4 and IPv6 addresses. Go's verifier enforces the e-mail and DNS constraints and
// ignores the directoryName ones.
func nameConstraints(providers []ProviderInfo) (pkix.Extension, error) {
	if len(providers) == 0 {
		return pkix.Extension{}, errors.New("pectest: no providers for name constraints")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			for _, p := range providers {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(strings.ToLower(p.Domain))) })
				})
			}
			for _, p := range providers {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(strings.ToLower(p.Domain))) })
				})
			}
			for _, p := range providers {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(4).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) { b.AddBytes(p.orgName("")) })
				})
			}
		})
		b.AddASN1(cbasn1.Tag(1).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 8)) })
			})
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(make([]byte, 32)) })
			})
		})
	})
	v, err := b.Bytes()
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("pectest: name constraints: %w", err)
	}
	return pkix.Extension{Id: oidNameConstraints, Value: v}, nil
}

// equalCert reports whether two certificates are the same DER.
func equalCert(a, b *x509.Certificate) bool { return bytes.Equal(a.Raw, b.Raw) }
