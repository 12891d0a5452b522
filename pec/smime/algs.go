package smime

import (
	"crypto"
	_ "crypto/sha1" // SHA-1 CMS digests, still used by PEC providers
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/asn1"
	"strings"
)

// oid returns the DER contents (no tag or length) of an OBJECT IDENTIFIER, the form the CMS
// parser compares against.
func oid(arcs ...int) string {
	b, err := asn1.Marshal(asn1.ObjectIdentifier(arcs))
	if err != nil {
		panic(err)
	}
	return string(b[2:]) // every OID used here is shorter than 128 bytes
}

// oidString renders the DER contents of an OBJECT IDENTIFIER in dotted form, for details.
func oidString(content []byte) string {
	if len(content) > 64 {
		return "(long OID)"
	}
	full := append([]byte{0x06, byte(len(content))}, content...)
	var o asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(full, &o); err != nil {
		return "(bad OID)"
	}
	return o.String()
}

var (
	oidData          = oid(1, 2, 840, 113549, 1, 7, 1)
	oidSignedData    = oid(1, 2, 840, 113549, 1, 7, 2)
	oidAttrContent   = oid(1, 2, 840, 113549, 1, 9, 3)
	oidAttrDigest    = oid(1, 2, 840, 113549, 1, 9, 4)
	oidAttrSigningTm = oid(1, 2, 840, 113549, 1, 9, 5)
	oidMGF1          = oid(1, 2, 840, 113549, 1, 1, 8)
)

// digestAlg is a CMS digest algorithm.
type digestAlg struct {
	name string // "sha1", "sha256", ...: Verdict.Digest and normalised micalg
	hash crypto.Hash
}

var (
	digestSHA1   = digestAlg{"sha1", crypto.SHA1}
	digestSHA224 = digestAlg{"sha224", crypto.SHA224}
	digestSHA256 = digestAlg{"sha256", crypto.SHA256}
	digestSHA384 = digestAlg{"sha384", crypto.SHA384}
	digestSHA512 = digestAlg{"sha512", crypto.SHA512}
)

// digestAlgs maps digest algorithm OIDs to digests. The sha*WithRSAEncryption OIDs appear as
// digest algorithms in some real-world signers; they are accepted as their hash.
var digestAlgs = map[string]digestAlg{
	oid(1, 3, 14, 3, 2, 26):             digestSHA1,
	oid(2, 16, 840, 1, 101, 3, 4, 2, 4): digestSHA224,
	oid(2, 16, 840, 1, 101, 3, 4, 2, 1): digestSHA256,
	oid(2, 16, 840, 1, 101, 3, 4, 2, 2): digestSHA384,
	oid(2, 16, 840, 1, 101, 3, 4, 2, 3): digestSHA512,
	oid(1, 2, 840, 113549, 1, 1, 5):     digestSHA1,
	oid(1, 2, 840, 113549, 1, 1, 14):    digestSHA224,
	oid(1, 2, 840, 113549, 1, 1, 11):    digestSHA256,
	oid(1, 2, 840, 113549, 1, 1, 12):    digestSHA384,
	oid(1, 2, 840, 113549, 1, 1, 13):    digestSHA512,
}

// sigKind is the family of a CMS signature algorithm.
type sigKind int

const (
	sigRSAPKCS1 sigKind = iota + 1
	sigRSAPSS
	sigECDSA
)

// sigAlg is a CMS signature algorithm; hash is the hash it names (0 when it names none, as for
// rsaEncryption, and then the SignerInfo digest algorithm applies).
type sigAlg struct {
	kind sigKind
	hash crypto.Hash
}

var sigAlgs = map[string]sigAlg{
	oid(1, 2, 840, 113549, 1, 1, 1):  {sigRSAPKCS1, 0},
	oid(1, 2, 840, 113549, 1, 1, 5):  {sigRSAPKCS1, crypto.SHA1},
	oid(1, 2, 840, 113549, 1, 1, 14): {sigRSAPKCS1, crypto.SHA224},
	oid(1, 2, 840, 113549, 1, 1, 11): {sigRSAPKCS1, crypto.SHA256},
	oid(1, 2, 840, 113549, 1, 1, 12): {sigRSAPKCS1, crypto.SHA384},
	oid(1, 2, 840, 113549, 1, 1, 13): {sigRSAPKCS1, crypto.SHA512},
	oid(1, 2, 840, 113549, 1, 1, 10): {sigRSAPSS, 0},
	oid(1, 2, 840, 10045, 2, 1):      {sigECDSA, 0},
	oid(1, 2, 840, 10045, 4, 1):      {sigECDSA, crypto.SHA1},
	oid(1, 2, 840, 10045, 4, 3, 1):   {sigECDSA, crypto.SHA224},
	oid(1, 2, 840, 10045, 4, 3, 2):   {sigECDSA, crypto.SHA256},
	oid(1, 2, 840, 10045, 4, 3, 3):   {sigECDSA, crypto.SHA384},
	oid(1, 2, 840, 10045, 4, 3, 4):   {sigECDSA, crypto.SHA512},
}

// normMicalg normalises a micalg parameter ("sha-256", "SHA256", "sha1") to a digest name.
func normMicalg(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "")
}
