package smime

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	errUnsupported = errors.New("smime: unsupported signature algorithm")
	errBadSig      = errors.New("smime: signature does not verify")
)

// checkSig verifies a signature over a digest computed with h. It returns errUnsupported for
// algorithms (or algorithm/key combinations) it does not handle and errBadSig when the
// signature does not verify.
func checkSig(pub crypto.PublicKey, sa sigAlg, params []byte, h crypto.Hash, digest, sig []byte) error {
	if sa.hash != 0 && sa.hash != h {
		return errUnsupported // signature algorithm names another hash than the digest algorithm
	}
	switch sa.kind {
	case sigRSAPKCS1:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errBadSig
		}
		if rsa.VerifyPKCS1v15(k, h, digest, sig) != nil {
			return errBadSig
		}
		return nil
	case sigRSAPSS:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errBadSig
		}
		salt, err := pssSalt(params, h)
		if err != nil {
			return err
		}
		if rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: salt, Hash: h}) != nil {
			return errBadSig
		}
		return nil
	case sigECDSA:
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return errBadSig
		}
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errBadSig
		}
		return nil
	}
	return errUnsupported
}

// pssSalt checks RSASSA-PSS-params (RFC 4055) against the digest h and returns the salt length.
// Only MGF1 with the same hash is supported, as in crypto/rsa.
func pssSalt(params []byte, h crypto.Hash) (int, error) {
	in := cryptobyte.String(params)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return 0, errUnsupported
	}
	hash, mgfHash, salt := crypto.SHA1, crypto.SHA1, int64(20)
	var hashAlg, mgfAlg, saltField cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&hashAlg, &present, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		return 0, errUnsupported
	}
	if present {
		o, _, err := readAlgID(&hashAlg)
		d, ok := digestAlgs[string(o)]
		if err != nil || !ok {
			return 0, errUnsupported
		}
		hash = d.hash
	}
	if !seq.ReadOptionalASN1(&mgfAlg, &present, cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return 0, errUnsupported
	}
	if present {
		var alg, o cryptobyte.String
		if !mgfAlg.ReadASN1(&alg, cbasn1.SEQUENCE) || !alg.ReadASN1(&o, cbasn1.OBJECT_IDENTIFIER) || string(o) != oidMGF1 {
			return 0, errUnsupported
		}
		ho, _, err := readAlgID(&alg)
		d, ok := digestAlgs[string(ho)]
		if err != nil || !ok {
			return 0, errUnsupported
		}
		mgfHash = d.hash
	}
	if !seq.ReadOptionalASN1(&saltField, &present, cbasn1.Tag(2).ContextSpecific().Constructed()) {
		return 0, errUnsupported
	}
	if present && (!saltField.ReadASN1Int64WithTag(&salt, cbasn1.INTEGER) || salt < 0 || salt > 1024) {
		return 0, errUnsupported
	}
	if hash != h || mgfHash != h {
		return 0, errUnsupported
	}
	if salt == 0 {
		// crypto/rsa reads 0 as "any length"; an explicit zero salt is rare and still verifies.
		return rsa.PSSSaltLengthAuto, nil
	}
	return int(salt), nil
}
