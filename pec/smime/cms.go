package smime

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	"github.com/smallstep/pkcs7"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Structural limits of one CMS blob, whatever the configured size limit.
const (
	maxSigners       = 16
	maxAttrs         = 256
	maxContentChunks = 1 << 16
)

var (
	tagCtx0C = cbasn1.Tag(0).ContextSpecific().Constructed() // [0] constructed
	tagCtx1C = cbasn1.Tag(1).ContextSpecific().Constructed() // [1] constructed
	tagCtx0P = cbasn1.Tag(0).ContextSpecific()               // [0] primitive
	tagOctC  = cbasn1.OCTET_STRING.Constructed()             // BER constructed OCTET STRING
)

// signedData is what verification needs from a CMS SignedData. Byte slices alias the input
// (except where the BER fallback parser produced fresh bytes).
type signedData struct {
	eContentType []byte // OID contents
	eContent     []byte
	hasEContent  bool
	certs        [][]byte            // DER of each certificate, in CMS order
	parsed       []*x509.Certificate // set by the BER fallback only, aligned with certs
	signers      []signerInfo
	ber          bool // parsed by the BER fallback (pkcs7)
}

// signerInfo is one CMS SignerInfo.
type signerInfo struct {
	issuer    []byte   // DER of the issuer Name (IssuerAndSerialNumber), nil with a SKI
	serial    *big.Int // with issuer
	ski       []byte   // SubjectKeyIdentifier form
	digestAlg []byte   // OID contents
	sigAlg    []byte   // OID contents
	sigParams []byte   // DER of the signature algorithm parameters, nil when absent
	signature []byte
	attrs     []byte // DER of signedAttrs as encoded (tag [0] or SET), nil when absent

	// Decoded from attrs by decodeAttrs.
	contentType    []byte
	messageDigest  []byte
	signingTime    time.Time
	hasSigningTime bool
}

// cmsError is a structural problem in the CMS blob (reason malformed-cms).
type cmsError struct{ msg string }

func (e *cmsError) Error() string { return "smime: malformed CMS: " + e.msg }

func malformed(format string, args ...any) error {
	return &cmsError{fmt.Sprintf(format, args...)}
}

// parseCMS parses a ContentInfo holding a SignedData. DER (and definite-length BER constructed
// OCTET STRINGs) go through a cryptobyte parser that neither copies nor parses certificates
// (the verifier parses them through its cache); other BER goes through the pkcs7 library.
func parseCMS(b []byte, maxCerts int) (*signedData, error) {
	sd, err := parseCMSFast(b, maxCerts)
	if err != nil {
		// Only well-delimited BER goes to the library, which would ignore trailing data.
		n, ok := berLen(b, 0)
		if !ok || !allZero(b[n:]) {
			return nil, err
		}
		sd2, err2 := parseCMSPKCS7(b[:n], maxCerts)
		if err2 != nil {
			return nil, err // the DER parser's complaint is the more precise one
		}
		sd = sd2
	}
	for i := range sd.signers {
		if err := sd.signers[i].decodeAttrs(); err != nil {
			return nil, err
		}
	}
	return sd, nil
}

func parseCMSFast(b []byte, maxCerts int) (*signedData, error) {
	in := cryptobyte.String(b)
	var ci, ctype, explicit, sdb cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) {
		return nil, malformed("not a DER ContentInfo")
	}
	if !allZero(in) { // tolerate zero padding after the ContentInfo, nothing else
		return nil, malformed("trailing data after ContentInfo")
	}
	if !ci.ReadASN1(&ctype, cbasn1.OBJECT_IDENTIFIER) {
		return nil, malformed("bad ContentInfo content type")
	}
	if string(ctype) != oidSignedData {
		return nil, malformed("content type %s is not signedData", oidString(ctype))
	}
	if !ci.ReadASN1(&explicit, tagCtx0C) || !ci.Empty() {
		return nil, malformed("bad ContentInfo content")
	}
	if !explicit.ReadASN1(&sdb, cbasn1.SEQUENCE) || !explicit.Empty() {
		return nil, malformed("bad SignedData")
	}
	sd := &signedData{}
	var version int64
	var dAlgs, eci cryptobyte.String
	if !sdb.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) {
		return nil, malformed("bad SignedData version")
	}
	if !sdb.ReadASN1(&dAlgs, cbasn1.SET) { // the SignerInfo's own digest algorithm is what counts
		return nil, malformed("bad SignedData digestAlgorithms")
	}
	if !sdb.ReadASN1(&eci, cbasn1.SEQUENCE) {
		return nil, malformed("bad encapContentInfo")
	}
	var ect cryptobyte.String
	if !eci.ReadASN1(&ect, cbasn1.OBJECT_IDENTIFIER) {
		return nil, malformed("bad eContentType")
	}
	sd.eContentType = ect
	var ec cryptobyte.String
	if !eci.ReadOptionalASN1(&ec, &sd.hasEContent, tagCtx0C) || !eci.Empty() {
		return nil, malformed("bad eContent")
	}
	if sd.hasEContent {
		content, err := readOctets(ec)
		if err != nil {
			return nil, err
		}
		sd.eContent = content
	}
	var certs cryptobyte.String
	var hasCerts bool
	if !sdb.ReadOptionalASN1(&certs, &hasCerts, tagCtx0C) {
		return nil, malformed("bad certificates")
	}
	for !certs.Empty() {
		var el cryptobyte.String
		var tag cbasn1.Tag
		if !certs.ReadAnyASN1Element(&el, &tag) {
			return nil, malformed("bad certificate set")
		}
		if tag != cbasn1.SEQUENCE { // other CertificateChoices (attribute certificates, ...) are not used
			continue
		}
		if len(sd.certs) >= maxCerts {
			return nil, malformed("more than %d certificates", maxCerts)
		}
		sd.certs = append(sd.certs, el)
	}
	if !sdb.SkipOptionalASN1(tagCtx1C) { // CRLs: not used
		return nil, malformed("bad crls")
	}
	var sis cryptobyte.String
	if !sdb.ReadASN1(&sis, cbasn1.SET) || !sdb.Empty() {
		return nil, malformed("bad signerInfos")
	}
	for !sis.Empty() {
		if len(sd.signers) >= maxSigners {
			return nil, malformed("more than %d signers", maxSigners)
		}
		var s cryptobyte.String
		if !sis.ReadASN1(&s, cbasn1.SEQUENCE) {
			return nil, malformed("bad SignerInfo")
		}
		si, err := parseSignerInfo(s)
		if err != nil {
			return nil, err
		}
		sd.signers = append(sd.signers, si)
	}
	return sd, nil
}

// readOctets returns the contents of the eContent OCTET STRING, joining the chunks of a
// constructed (BER) one.
func readOctets(ec cryptobyte.String) ([]byte, error) {
	var body cryptobyte.String
	var tag cbasn1.Tag
	if !ec.ReadAnyASN1(&body, &tag) || !ec.Empty() {
		return nil, malformed("bad eContent")
	}
	switch tag {
	case cbasn1.OCTET_STRING:
		return body, nil
	case tagOctC:
		var out []byte
		if err := joinOctets(body, &out, 0); err != nil {
			return nil, err
		}
		return out, nil
	default:
		// PKCS #7 v1.5 allowed any type here; the digest covers its contents octets.
		return body, nil
	}
}

func joinOctets(s cryptobyte.String, out *[]byte, depth int) error {
	if depth > 4 {
		return malformed("eContent nested too deep")
	}
	for n := 0; !s.Empty(); n++ {
		if n >= maxContentChunks {
			return malformed("eContent has too many chunks")
		}
		var chunk cryptobyte.String
		var tag cbasn1.Tag
		if !s.ReadAnyASN1(&chunk, &tag) {
			return malformed("bad eContent chunk")
		}
		switch tag {
		case cbasn1.OCTET_STRING:
			*out = append(*out, chunk...)
		case tagOctC:
			if err := joinOctets(chunk, out, depth+1); err != nil {
				return err
			}
		default:
			return malformed("bad eContent chunk")
		}
	}
	return nil
}

func parseSignerInfo(s cryptobyte.String) (signerInfo, error) {
	var si signerInfo
	var version int64
	if !s.ReadASN1Int64WithTag(&version, cbasn1.INTEGER) {
		return si, malformed("bad SignerInfo version")
	}
	switch {
	case s.PeekASN1Tag(cbasn1.SEQUENCE):
		var ias, issuer cryptobyte.String
		si.serial = new(big.Int)
		if !s.ReadASN1(&ias, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Element(&issuer, cbasn1.SEQUENCE) ||
			!ias.ReadASN1Integer(si.serial) || !ias.Empty() {
			return si, malformed("bad IssuerAndSerialNumber")
		}
		si.issuer = issuer
	case s.PeekASN1Tag(tagCtx0P):
		var ski cryptobyte.String
		if !s.ReadASN1(&ski, tagCtx0P) {
			return si, malformed("bad SubjectKeyIdentifier")
		}
		si.ski = ski
	default:
		return si, malformed("bad SignerIdentifier")
	}
	var err error
	if si.digestAlg, _, err = readAlgID(&s); err != nil {
		return si, err
	}
	if s.PeekASN1Tag(tagCtx0C) {
		var attrs cryptobyte.String
		if !s.ReadASN1Element(&attrs, tagCtx0C) {
			return si, malformed("bad signedAttrs")
		}
		si.attrs = attrs
	}
	if si.sigAlg, si.sigParams, err = readAlgID(&s); err != nil {
		return si, err
	}
	var sig cryptobyte.String
	if !s.ReadASN1(&sig, cbasn1.OCTET_STRING) {
		return si, malformed("bad signature value")
	}
	si.signature = sig
	if !s.SkipOptionalASN1(tagCtx1C) || !s.Empty() { // unsignedAttrs: not used
		return si, malformed("bad unsignedAttrs")
	}
	return si, nil
}

// readAlgID reads an AlgorithmIdentifier: the OID contents and the DER of the parameters (nil
// when absent).
func readAlgID(s *cryptobyte.String) (oid, params []byte, err error) {
	var alg, o cryptobyte.String
	if !s.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1(&o, cbasn1.OBJECT_IDENTIFIER) {
		return nil, nil, malformed("bad AlgorithmIdentifier")
	}
	if !alg.Empty() {
		var p cryptobyte.String
		var tag cbasn1.Tag
		if !alg.ReadAnyASN1Element(&p, &tag) || !alg.Empty() {
			return nil, nil, malformed("bad AlgorithmIdentifier parameters")
		}
		if tag != cbasn1.NULL {
			params = p
		}
	}
	return o, params, nil
}

// decodeAttrs extracts contentType, messageDigest and signingTime from the signed attributes.
// Each may appear once with exactly one value (RFC 5652 section 11).
func (si *signerInfo) decodeAttrs() error {
	if si.attrs == nil {
		return nil
	}
	in := cryptobyte.String(si.attrs)
	var set cryptobyte.String
	var tag cbasn1.Tag
	if !in.ReadAnyASN1(&set, &tag) || !in.Empty() || (tag != tagCtx0C && tag != cbasn1.SET) {
		return malformed("bad signedAttrs")
	}
	if set.Empty() {
		return malformed("empty signedAttrs")
	}
	var seenType, seenDigest bool
	for n := 0; !set.Empty(); n++ {
		if n >= maxAttrs {
			return malformed("more than %d signed attributes", maxAttrs)
		}
		var attr, typ, vals cryptobyte.String
		if !set.ReadASN1(&attr, cbasn1.SEQUENCE) ||
			!attr.ReadASN1(&typ, cbasn1.OBJECT_IDENTIFIER) ||
			!attr.ReadASN1(&vals, cbasn1.SET) || !attr.Empty() {
			return malformed("bad signed attribute")
		}
		switch string(typ) {
		case oidAttrContent:
			var v cryptobyte.String
			if seenType || !vals.ReadASN1(&v, cbasn1.OBJECT_IDENTIFIER) || !vals.Empty() {
				return malformed("bad contentType attribute")
			}
			seenType, si.contentType = true, v
		case oidAttrDigest:
			var v cryptobyte.String
			if seenDigest || !vals.ReadASN1(&v, cbasn1.OCTET_STRING) || !vals.Empty() {
				return malformed("bad messageDigest attribute")
			}
			seenDigest, si.messageDigest = true, v
		case oidAttrSigningTm:
			var t time.Time
			ok := false
			switch {
			case vals.PeekASN1Tag(cbasn1.UTCTime):
				ok = vals.ReadASN1UTCTime(&t)
			case vals.PeekASN1Tag(cbasn1.GeneralizedTime):
				ok = vals.ReadASN1GeneralizedTime(&t)
			}
			if si.hasSigningTime || !ok || !vals.Empty() {
				return malformed("bad signingTime attribute")
			}
			si.hasSigningTime, si.signingTime = true, t.UTC()
		}
	}
	if !seenType || !seenDigest {
		return malformed("signedAttrs lack contentType or messageDigest")
	}
	return nil
}

// signedAttrsTag is the first byte of the DER the signature covers: signedAttrs re-tagged as an
// explicit SET OF (RFC 5652 section 5.4).
var signedAttrsTag = []byte{0x30 | 0x01}

// p7attr mirrors the pkcs7 library's attribute so its values can be re-encoded.
type p7attr struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue `asn1:"set"`
}

// parseCMSPKCS7 parses BER input with the pkcs7 library (which converts BER to DER) and converts
// the result. It recovers from panics in the library: hostile input must not crash the caller.
func parseCMSPKCS7(b []byte, maxCerts int) (sd *signedData, err error) {
	defer func() {
		if r := recover(); r != nil {
			sd, err = nil, malformed("pkcs7 parser: %v", r)
		}
	}()
	p7, err := pkcs7.Parse(b)
	if err != nil {
		return nil, malformed("%v", err)
	}
	if len(p7.Certificates) > maxCerts {
		return nil, malformed("more than %d certificates", maxCerts)
	}
	if len(p7.Signers) == 0 || len(p7.Signers) > maxSigners {
		return nil, malformed("%d signers", len(p7.Signers))
	}
	sd = &signedData{
		ber:          true,
		eContentType: []byte(oidData), // the library accepts only data here
		eContent:     p7.Content,
		hasEContent:  len(p7.Content) > 0,
	}
	for _, c := range p7.Certificates {
		sd.certs = append(sd.certs, c.Raw)
		sd.parsed = append(sd.parsed, c)
	}
	for _, s := range p7.Signers {
		si := signerInfo{
			issuer:    s.IssuerAndSerialNumber.IssuerName.FullBytes,
			serial:    s.IssuerAndSerialNumber.SerialNumber,
			digestAlg: oidContents(s.DigestAlgorithm.Algorithm),
			sigAlg:    oidContents(s.DigestEncryptionAlgorithm.Algorithm),
			signature: s.EncryptedDigest,
		}
		if p := s.DigestEncryptionAlgorithm.Parameters.FullBytes; len(p) > 0 && !bytes.Equal(p, []byte{5, 0}) {
			si.sigParams = p
		}
		if si.serial == nil || len(si.issuer) == 0 {
			return nil, malformed("bad IssuerAndSerialNumber")
		}
		if len(s.AuthenticatedAttributes) > 0 {
			attrs := make([]p7attr, len(s.AuthenticatedAttributes))
			for i, a := range s.AuthenticatedAttributes {
				attrs[i] = p7attr{a.Type, a.Value}
			}
			enc, err := asn1.Marshal(struct {
				A []p7attr `asn1:"set"`
			}{attrs})
			if err != nil {
				return nil, malformed("re-encoding signedAttrs: %v", err)
			}
			var outer asn1.RawValue
			if _, err := asn1.Unmarshal(enc, &outer); err != nil {
				return nil, malformed("re-encoding signedAttrs: %v", err)
			}
			si.attrs = outer.Bytes // the SET OF element
		}
		sd.signers = append(sd.signers, si)
	}
	return sd, nil
}

func oidContents(o asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(o)
	if err != nil {
		return nil
	}
	s := cryptobyte.String(b)
	var c cryptobyte.String
	if !s.ReadASN1(&c, cbasn1.OBJECT_IDENTIFIER) {
		return nil
	}
	return c
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// berLen returns the length of the BER element at the start of b (definite or indefinite
// length), or false when b does not start with a complete element.
func berLen(b []byte, depth int) (int, bool) {
	if depth > 32 || len(b) < 2 {
		return 0, false
	}
	tag, i := b[0], 1
	if tag&0x1f == 0x1f { // high tag number form
		for {
			if i >= len(b) || i > 5 {
				return 0, false
			}
			c := b[i]
			i++
			if c&0x80 == 0 {
				break
			}
		}
	}
	if i >= len(b) {
		return 0, false
	}
	l := b[i]
	i++
	switch {
	case l < 0x80:
		if int(l) > len(b)-i {
			return 0, false
		}
		return i + int(l), true
	case l == 0x80:
		if tag&0x20 == 0 { // indefinite length needs a constructed encoding
			return 0, false
		}
		for {
			if i+2 <= len(b) && b[i] == 0 && b[i+1] == 0 {
				return i + 2, true
			}
			n, ok := berLen(b[i:], depth+1)
			if !ok {
				return 0, false
			}
			i += n
		}
	default:
		k := int(l & 0x7f)
		if k > 4 || k > len(b)-i {
			return 0, false
		}
		v := 0
		for j := 0; j < k; j++ {
			v = v<<8 | int(b[i+j])
		}
		i += k
		if v < 0 || v > len(b)-i {
			return 0, false
		}
		return i + v, true
	}
}
