package smime

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/smallstep/pkcs7"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

// BenchmarkVerify measures verification of the real envelope (SHA-1, 2 certificates, 26 KB
// signed entity with LF line ends), of a generated 10 KB SHA-256 delivery receipt and of the
// test provider's typical 13 KB SHA-1 delivery receipt, alone
// (parsed once) and with pec.Parse, with warm caches (the steady state of an archive), and
// with cold caches (a new Verifier each time).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	p := testPKIOnce()
	raw10k, _ := signedReceipt(b, p, 10<<10, t0)
	ca, err := pectest.NewCA(1, nil)
	if err != nil {
		b.Fatal(err)
	}
	typical := pectest.TypicalDeliveryReceipt(1)
	cases := []struct {
		name    string
		raw     func(testing.TB) []byte
		anchors *TrustStore
	}{
		{"real", func(tb testing.TB) []byte {
			raw := sampleBytes(realEnvelope)
			if raw == nil {
				tb.Skip("samples not present")
			}
			return raw
		}, nil},
		{"sha256-10KB", func(testing.TB) []byte { return raw10k }, p.anchors},
		{"pectest-typical", func(testing.TB) []byte { return typical }, NewTrustStore(ca.Root)},
	}
	for _, tc := range cases {
		b.Run(tc.name+"/verify", func(b *testing.B) {
			m, err := pec.Parse(tc.raw(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			v := mustVerifier(b, Config{Anchors: tc.anchors})
			if vd := v.VerifyMessage(ctx, m, nil); !vd.Trusted {
				b.Fatalf("verdict %+v", vd)
			}
			b.SetBytes(int64(len(m.Signature.Content)))
			b.ReportAllocs()
			for b.Loop() {
				v.VerifyMessage(ctx, m, nil)
			}
		})
		b.Run(tc.name+"/parse+verify", func(b *testing.B) {
			raw := tc.raw(b)
			v := mustVerifier(b, Config{Anchors: tc.anchors})
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				m, err := pec.Parse(raw, nil)
				if err != nil {
					b.Fatal(err)
				}
				if vd := v.VerifyMessage(ctx, m, nil); !vd.Trusted {
					b.Fatalf("verdict %+v", vd)
				}
			}
		})
		b.Run(tc.name+"/verify-cold", func(b *testing.B) {
			m, err := pec.Parse(tc.raw(b), nil)
			if err != nil {
				b.Fatal(err)
			}
			anchors := tc.anchors.or()
			b.ReportAllocs()
			for b.Loop() {
				v := mustVerifier(b, Config{Anchors: anchors})
				v.VerifyMessage(ctx, m, nil)
			}
		})
	}
}

// BenchmarkFloor is the floor of the performance target: SHA-256 over 10 KB and one RSA-2048
// PKCS #1 v1.5 verification.
func BenchmarkFloor(b *testing.B) {
	data := testEntity(10 << 10)
	key := testKeys()[0]
	d := sha256.Sum256(data)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d := sha256.Sum256(data)
		if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, d[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCMS compares the DER fast path with pkcs7.Parse on the real CMS blob.
func BenchmarkParseCMS(b *testing.B) {
	s := realSignature()
	if s == nil {
		b.Skip("samples not present")
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseCMS(s.CMS, DefaultMaxCerts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pkcs7", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pkcs7.Parse(s.CMS); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCanonicalHash measures hashing a 10 KB LF entity as CRLF on the fly.
func BenchmarkCanonicalHash(b *testing.B) {
	data := crlfToLF(testEntity(10 << 10))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	h := sha256.New()
	for b.Loop() {
		h.Reset()
		writeCanonical(h, data)
		h.Sum(nil)
	}
}
