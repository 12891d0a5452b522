package smime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

// sampleBytes reads a shared sample when the samples are present (fuzz seeds must not skip).
func sampleBytes(rel string) []byte {
	d := samples.Dir()
	if d == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(d, rel))
	if err != nil {
		return nil
	}
	return b
}

// realSignature returns the signature of the real envelope, or nil without samples.
func realSignature() *pec.Signature {
	raw := sampleBytes(realEnvelope)
	if raw == nil {
		return nil
	}
	m, err := pec.Parse(raw, nil)
	if err != nil || m.Signature == nil {
		return nil
	}
	return m.Signature
}

func cmsSeeds(f *testing.F) (content [][]byte, cms [][]byte) {
	if s := realSignature(); s != nil {
		content = append(content, s.Content)
		cms = append(cms, s.CMS)
	}
	p := testPKIOnce()
	c := testEntity(1 << 10)
	for _, o := range []cmsOpts{
		{signingTime: t0},
		{signingTime: t0, opaque: true},
		{noAttrs: true, ski: true},
		{signingTime: t0, pss: true},
	} {
		content = append(content, c)
		cms = append(cms, p.buildCMS(f, c, o))
	}
	content = append(content, c)
	cms = append(cms, toBER(f, p.buildCMS(f, c, cmsOpts{signingTime: t0})))
	return content, cms
}

// FuzzParseCMS checks that CMS parsing (DER fast path and BER fallback) never panics and keeps
// its invariants.
func FuzzParseCMS(f *testing.F) {
	_, cms := cmsSeeds(f)
	for _, c := range cms {
		f.Add(c)
	}
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := parseCMS(b, DefaultMaxCerts)
		if err != nil {
			return
		}
		if len(sd.certs) > DefaultMaxCerts || len(sd.signers) > maxSigners {
			t.Fatalf("limits exceeded: %d certs, %d signers", len(sd.certs), len(sd.signers))
		}
		for _, si := range sd.signers {
			if si.attrs != nil && (si.contentType == nil || si.messageDigest == nil) {
				t.Fatalf("signed attributes without contentType or messageDigest accepted")
			}
		}
	})
}

// FuzzVerify runs full verifications over mutated signed entities and CMS blobs.
func FuzzVerify(f *testing.F) {
	content, cms := cmsSeeds(f)
	for i := range cms {
		f.Add(content[i], cms[i], "sha1", false)
		f.Add(crlfToLF(content[i]), cms[i], "sha-256", true)
	}
	// Test-provider traffic: SHA-1 and SHA-256, LF, opaque, defective signers.
	for _, g := range pectest.AllKinds(1) {
		if !strings.HasPrefix(g.Name, "avvenuta-consegna-completa") {
			continue
		}
		if m, err := pec.Parse(g.Bytes, nil); err == nil && m.Signature != nil {
			f.Add(m.Signature.Content, m.Signature.CMS, m.Signature.Micalg, m.Signature.Form == pec.SignatureOpaque)
		}
	}
	ca, err := pectest.NewCA(1, nil)
	if err != nil {
		f.Fatal(err)
	}
	p := testPKIOnce()
	vs := []*Verifier{
		mustVerifier(f, Config{}),
		mustVerifier(f, Config{Anchors: Merge(p.anchors, NewTrustStore(ca.Root))}),
	}
	f.Fuzz(func(t *testing.T, content, cms []byte, micalg string, opaque bool) {
		sig := detached(content, cms, micalg)
		if opaque {
			sig = &pec.Signature{Form: pec.SignatureOpaque, CMS: cms}
		}
		for _, v := range vs {
			vd := v.Verify(context.Background(), sig, testFrom, &VerifyOptions{ReceivedAt: t0})
			if vd.Trusted && !vd.Valid || vd.Valid && !vd.Present {
				t.Fatalf("inconsistent verdict %+v", vd)
			}
			if !slices.IsSorted(vd.Reasons) || vd.Reasons == nil {
				t.Fatalf("reasons %v", vd.Reasons)
			}
			for _, r := range vd.Reasons {
				if vd.Trusted && !IsWarning(r) {
					t.Fatalf("trusted with reason %q", r)
				}
				if vd.Valid && IsInvalidating(r) {
					t.Fatalf("valid with reason %q", r)
				}
			}
			if vd.Trusted && (len(vd.Chain) < 2 || !v.Anchors().Contains(vd.Chain[len(vd.Chain)-1])) {
				t.Fatalf("trusted without a chain to an anchor")
			}
		}
	})
}

// FuzzLDIF checks that LDIF parsing and index loading never panic.
func FuzzLDIF(f *testing.F) {
	if b := sampleBytes(rfcLDIF); b != nil {
		f.Add(b)
	}
	p := testPKIOnce()
	l := indexLDIF("Example PEC S.p.A.", sha1Hex(p.signer.Raw), p.signer.Raw, "pec.example.it")
	f.Add(l)
	f.Add(p.buildCMS(f, l, cmsOpts{signingTime: t0, opaque: true}))
	f.Add([]byte("version: 1\n# c\n x\ndn:: Y249eA==\ncn;binary:: AAE=\n a\n\ndn: x\nchangetype: modify\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLDIF(b)
		if err == nil {
			for _, e := range l.Entries {
				_ = e.Values("providerCertificate")
			}
		}
		ix, err := LoadIndex(b, &IndexOptions{Anchors: p.anchors})
		if err == nil {
			for i := range ix.Providers {
				ix.Lookup(p.signer.Raw)
				ix.ProvidersForDomain(ix.Providers[i].Name)
			}
		}
	})
}
