package smime

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// Errors of [LoadIndex].
var (
	ErrIndexUnsigned  = errors.New("smime: provider index is not signed")
	ErrIndexSignature = errors.New("smime: provider index signature not valid or not trusted")
	ErrIndexEmpty     = errors.New("smime: provider index lists no providers")
)

// IndexSignatureError is returned by [LoadIndex] when a signed index does not verify; Verdict
// says why. It matches [ErrIndexSignature] with errors.Is.
type IndexSignatureError struct {
	Verdict Verdict
}

func (e *IndexSignatureError) Error() string {
	return fmt.Sprintf("%v: %s", ErrIndexSignature, strings.Join(e.Verdict.Reasons, ", "))
}

func (e *IndexSignatureError) Unwrap() error { return ErrIndexSignature }

// Provider is one PEC provider of the index (an LDIF record with a providerName).
type Provider struct {
	DN   string
	Name string // providerName
	// CertificateHashes are the providerCertificateHash values: SHA-1 of the DER certificate,
	// lower-case hex without separators.
	CertificateHashes []string
	Certificates      [][]byte // providerCertificate values (DER)
	MailReceipt       string
	ManagedDomains    []string // lower-case
	// Problems found in the record: undecodable values, a hash that matches no listed
	// certificate, and so on. The record is still usable as far as it goes.
	Problems []string
}

// manages reports whether domain (lower-case) is one of the provider's managed domains.
func (p *Provider) manages(domain string) bool {
	for _, d := range p.ManagedDomains {
		if d == domain {
			return true
		}
	}
	return false
}

func (p *Provider) hasCert(der []byte) bool {
	for _, c := range p.Certificates {
		if bytes.Equal(c, der) {
			return true
		}
	}
	return false
}

// ProviderIndex is the official index of PEC providers (IGPEC, RFC 6109 section 4.5). It is
// immutable once loaded and safe for concurrent use.
type ProviderIndex struct {
	Providers []Provider
	Problems  []string // problems outside provider records
	// Signature is the verdict on the signed index file; nil for a plain LDIF.
	Signature *Verdict
	byHash    map[string][]int // providerCertificateHash -> Providers indices
}

// IndexOptions configure [LoadIndex]. A nil *IndexOptions means the defaults.
type IndexOptions struct {
	// Anchors verify a signed index; nil means DefaultTrustStore.
	Anchors *TrustStore
	// At is the time to verify a signed index at; zero means its signingTime (or the current
	// time when it has none).
	At time.Time
	// RequireSigned refuses a plain LDIF with ErrIndexUnsigned.
	RequireSigned bool
	// Now is the clock used when no other time is known; nil means time.Now.
	Now func() time.Time
}

// LoadIndex loads a provider index from a plain LDIF file or from a signed one (an opaque CMS
// SignedData, .ldif.p7m, in DER, PEM or base64). A signed index is used only if its signature
// is valid and chains to the anchors at the verification time (otherwise an
// *IndexSignatureError); the PEC certificate profile does not apply to the index signer.
func LoadIndex(data []byte, opts *IndexOptions) (*ProviderIndex, error) {
	var o IndexOptions
	if opts != nil {
		o = *opts
	}
	if len(data) > maxLDIFSize {
		return nil, fmt.Errorf("%w: index over %d bytes", ErrTooLarge, maxLDIFSize)
	}
	var sigVerdict *Verdict
	if cms := indexCMS(data); cms != nil {
		v, err := New(Config{Anchors: o.Anchors, Now: o.Now, MaxCMSSize: maxLDIFSize + 1<<20})
		if err != nil {
			return nil, err
		}
		sig := &pec.Signature{Form: pec.SignatureOpaque, CMS: cms}
		vd, content := v.verify(context.Background(), sig, "", &VerifyOptions{At: o.At}, &indexPolicy)
		if !vd.Valid || !vd.Trusted {
			return nil, &IndexSignatureError{Verdict: vd}
		}
		sigVerdict = &vd
		data = content
	} else if o.RequireSigned {
		return nil, ErrIndexUnsigned
	}
	l, err := ParseLDIF(data)
	if err != nil {
		return nil, err
	}
	ix := buildIndex(l)
	ix.Signature = sigVerdict
	if len(ix.Providers) == 0 {
		return nil, ErrIndexEmpty
	}
	return ix, nil
}

// indexCMS returns the DER of a signed index, or nil when data looks like plain LDIF.
func indexCMS(data []byte) []byte {
	t := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	switch {
	case len(t) == 0:
		return nil
	case t[0] == 0x30:
		return t
	case bytes.HasPrefix(t, []byte("-----BEGIN ")):
		if b, _ := pem.Decode(t); b != nil {
			return b.Bytes
		}
		return nil
	case bytes.HasPrefix(t, []byte("MI")):
		first := t
		if i := bytes.IndexByte(t, '\n'); i >= 0 {
			first = t[:i]
		}
		if bytes.ContainsAny(first, ": ") {
			return nil
		}
		clean := bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, t)
		der, err := base64.StdEncoding.DecodeString(string(clean))
		if err != nil || len(der) == 0 || der[0] != 0x30 {
			return nil
		}
		return der
	}
	return nil
}

func buildIndex(l *LDIF) *ProviderIndex {
	ix := &ProviderIndex{Problems: l.Problems, byHash: make(map[string][]int)}
	for i := range l.Entries {
		e := &l.Entries[i]
		name := e.Value("providerName")
		if name == "" {
			if len(e.Problems) > 0 {
				for _, p := range e.Problems {
					addProblem(&ix.Problems, "%s: %s", e.DN, p)
				}
			}
			continue
		}
		p := Provider{
			DN:          e.DN,
			Name:        strings.TrimSpace(name),
			MailReceipt: strings.TrimSpace(e.Value("mailReceipt")),
			Problems:    append([]string(nil), e.Problems...),
		}
		for _, h := range e.Values("providerCertificateHash") {
			norm := normHex(string(h))
			if len(norm) != 2*sha1.Size {
				addProblem(&p.Problems, "providerCertificateHash %q is not a SHA-1 hex digest", h)
				continue
			}
			p.CertificateHashes = append(p.CertificateHashes, norm)
		}
		p.Certificates = e.Values("providerCertificate")
		for _, d := range e.Values("managedDomains") {
			if dom := normDomain(string(d)); dom != "" {
				p.ManagedDomains = append(p.ManagedDomains, dom)
			}
		}
		for j, c := range p.Certificates {
			sum := sha1.Sum(c)
			hs := hex.EncodeToString(sum[:])
			found := false
			for _, h := range p.CertificateHashes {
				found = found || h == hs
			}
			if !found {
				addProblem(&p.Problems, "providerCertificate #%d: SHA-1 %s matches no providerCertificateHash", j+1, hs)
			}
		}
		for _, h := range p.CertificateHashes {
			found := false
			for _, c := range p.Certificates {
				sum := sha1.Sum(c)
				found = found || hex.EncodeToString(sum[:]) == h
			}
			if !found {
				addProblem(&p.Problems, "providerCertificateHash %s matches no providerCertificate", h)
			}
		}
		if len(p.CertificateHashes) == 0 {
			addProblem(&p.Problems, "no providerCertificateHash")
		}
		idx := len(ix.Providers)
		ix.Providers = append(ix.Providers, p)
		for _, h := range p.CertificateHashes {
			ix.byHash[h] = append(ix.byHash[h], idx)
		}
	}
	return ix
}

func normHex(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'f':
			b.WriteRune(r)
		case r >= 'A' && r <= 'F':
			b.WriteRune(r + 'a' - 'A')
		case r == ':' || r == ' ' || r == '\t':
		default:
			return ""
		}
	}
	return b.String()
}

func normDomain(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// Lookup returns the provider whose providerCertificateHash is the SHA-1 of der, with the reason
// the match falls short: "" when the listed certificate is der itself, [ReasonIndexCertMismatch]
// when the hash matches but no listed certificate equals der, [ReasonNotInIndex] (and a nil
// provider) when no hash matches.
func (ix *ProviderIndex) Lookup(der []byte) (*Provider, string) {
	return ix.lookup(sha1.Sum(der), der)
}

func (ix *ProviderIndex) lookup(sum [20]byte, der []byte) (*Provider, string) {
	idx := ix.byHash[hex.EncodeToString(sum[:])]
	if len(idx) == 0 {
		return nil, ReasonNotInIndex
	}
	for _, i := range idx {
		if ix.Providers[i].hasCert(der) {
			return &ix.Providers[i], ""
		}
	}
	return &ix.Providers[idx[0]], ReasonIndexCertMismatch
}

// ProvidersForDomain returns the providers that list domain among their managed domains.
func (ix *ProviderIndex) ProvidersForDomain(domain string) []*Provider {
	domain = normDomain(domain)
	var out []*Provider
	for i := range ix.Providers {
		if ix.Providers[i].manages(domain) {
			out = append(out, &ix.Providers[i])
		}
	}
	return out
}
