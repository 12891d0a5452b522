package pectest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Digest is the CMS digest algorithm.
type Digest string

const (
	SHA1   Digest = "sha1"    // what real providers still use (micalg=sha1)
	SHA256 Digest = "sha-256" // micalg=sha-256
)

var (
	oidData            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidAttrContentType = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidAttrDigest      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidAttrSigningTime = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidAttrSMIMECaps   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 15}
	oidSHA1            = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256          = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidRSA             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidDESEDE3CBC      = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
	oidDESCBC          = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 7}
)

// SignOptions configure [Signer.Sign].
type SignOptions struct {
	// Digest is the digest algorithm; default SHA1 like real providers.
	Digest Digest
	// SigningTime is the signingTime attribute (required: there is no clock here).
	SigningTime time.Time
	// Opaque encapsulates the content in the SignedData (application/pkcs7-mime) instead of
	// producing a detached signature.
	Opaque bool
	// NoCapabilities omits the sMIMECapabilities attribute (real Aruba signatures carry one,
	// listing des-ede3-cbc and des-cbc).
	NoCapabilities bool
	// NoCertificates omits the certificates from the SignedData.
	NoCertificates bool
}

// Sign returns the DER of a CMS ContentInfo holding a SignedData over content (which must
// already be in canonical CRLF form for S/MIME), with signed attributes contentType,
// signingTime, messageDigest (and sMIMECapabilities), the signer certificate followed by its
// intermediates, and an RSA PKCS#1 v1.5 signature. The encoding is DER and deterministic.
func (s *Signer) Sign(content []byte, opts SignOptions) ([]byte, error) {
	if s == nil || s.Cert == nil || s.Key == nil {
		return nil, errors.New("pectest: nil signer")
	}
	if opts.SigningTime.IsZero() {
		return nil, errors.New("pectest: SignOptions.SigningTime is required")
	}
	var (
		hash      crypto.Hash
		digestOID asn1.ObjectIdentifier
		sum       []byte
	)
	switch opts.Digest {
	case "", SHA1:
		hash, digestOID = crypto.SHA1, oidSHA1
		h := sha1.Sum(content)
		sum = h[:]
	case SHA256:
		hash, digestOID = crypto.SHA256, oidSHA256
		h := sha256.Sum256(content)
		sum = h[:]
	default:
		return nil, fmt.Errorf("pectest: unsupported digest %q", opts.Digest)
	}

	// Signed attributes, each encoded on its own so they can be put in DER SET OF order.
	var attrs [][]byte
	attr := func(oid asn1.ObjectIdentifier, value func(b *cryptobyte.Builder)) {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		attrs = append(attrs, b.BytesOrPanic())
	}
	attr(oidAttrContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidData) })
	st := opts.SigningTime.UTC().Truncate(time.Second)
	attr(oidAttrSigningTime, func(b *cryptobyte.Builder) {
		if st.Year() >= 1950 && st.Year() < 2050 {
			b.AddASN1UTCTime(st)
		} else {
			b.AddASN1GeneralizedTime(st)
		}
	})
	attr(oidAttrDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(sum) })
	if !opts.NoCapabilities {
		attr(oidAttrSMIMECaps, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidDESEDE3CBC) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oidDESCBC) })
			})
		})
	}
	slices.SortFunc(attrs, bytes.Compare)
	var sa cryptobyte.Builder
	sa.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddBytes(a)
		}
	})
	signedAttrs := sa.BytesOrPanic() // the DER SET the signature covers
	var toSign []byte
	if hash == crypto.SHA1 {
		h := sha1.Sum(signedAttrs)
		toSign = h[:]
	} else {
		h := sha256.Sum256(signedAttrs)
		toSign = h[:]
	}
	key := s.Key
	if s.SignKey != nil {
		key = s.SignKey
	}
	sig, err := rsa.SignPKCS1v15(nil, key, hash, toSign)
	if err != nil {
		return nil, fmt.Errorf("pectest: sign: %w", err)
	}

	algID := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1NULL()
		})
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
		b.AddASN1ObjectIdentifier(oidSignedData)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { algID(b, digestOID) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // EncapsulatedContentInfo
					b.AddASN1ObjectIdentifier(oidData)
					if opts.Opaque {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(content)
						})
					}
				})
				if !opts.NoCertificates {
					b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
						b.AddBytes(s.Cert.Raw)
						for _, c := range s.Chain {
							b.AddBytes(c.Raw)
						}
					})
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignerInfo
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
							b.AddBytes(s.Cert.RawIssuer)
							b.AddASN1BigInt(s.Cert.SerialNumber)
						})
						algID(b, digestOID)
						// [0] IMPLICIT SET OF Attribute: the same bytes with the tag replaced.
						b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							for _, a := range attrs {
								b.AddBytes(a)
							}
						})
						algID(b, oidRSA)
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return out.Bytes()
}
