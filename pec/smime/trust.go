package smime

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Errors of [LoadPEM] and [ParsePEM].
var (
	ErrNoCertificates = errors.New("smime: no certificates found")
	ErrBadCertificate = errors.New("smime: bad certificate")
	ErrTooLarge       = errors.New("smime: input too large")
)

// Limits of trust-anchor loading.
const (
	maxAnchorFile  = 4 << 20 // bytes per file
	maxAnchorFiles = 10000   // files per directory
)

// TrustStore is an immutable set of trust anchors. Any CA certificate can be an anchor (an
// intermediate such as AgID CA1 included): chains end at the first anchor they reach. A nil
// *TrustStore means [DefaultTrustStore] wherever one is accepted.
type TrustStore struct {
	certs []*x509.Certificate // sorted by DER, no duplicates
	pool  *x509.CertPool
	id    string
}

// NewTrustStore returns a store of the given certificates (duplicates removed).
func NewTrustStore(certs ...*x509.Certificate) *TrustStore {
	s := &TrustStore{pool: x509.NewCertPool()}
	seen := make(map[string]bool)
	for _, c := range certs {
		if c == nil || seen[string(c.Raw)] {
			continue
		}
		seen[string(c.Raw)] = true
		s.certs = append(s.certs, c)
	}
	slices.SortFunc(s.certs, func(a, b *x509.Certificate) int { return bytes.Compare(a.Raw, b.Raw) })
	h := sha256.New()
	for _, c := range s.certs {
		s.pool.AddCert(c)
		h.Write(c.Raw)
	}
	s.id = hex.EncodeToString(h.Sum(nil))
	return s
}

// Merge returns a store holding the anchors of every given store (nil stores are skipped, not
// replaced by the defaults).
func Merge(stores ...*TrustStore) *TrustStore {
	var all []*x509.Certificate
	for _, s := range stores {
		if s != nil {
			all = append(all, s.certs...)
		}
	}
	return NewTrustStore(all...)
}

var defaultStore = sync.OnceValue(func() *TrustStore {
	s, err := ParsePEM([]byte(defaultAnchorsPEM))
	if err != nil {
		panic("smime: built-in anchors: " + err.Error())
	}
	return s
})

// DefaultTrustStore returns the built-in anchors: AgID CA1 and Actalis Authentication Root CA.
func DefaultTrustStore() *TrustStore { return defaultStore() }

// ParsePEM returns a store of the CERTIFICATE blocks in the given PEM data (other blocks and
// text between blocks are ignored).
func ParsePEM(data ...[]byte) (*TrustStore, error) {
	var certs []*x509.Certificate
	for _, d := range data {
		cs, err := parseCertsPEM(d, "")
		if err != nil {
			return nil, err
		}
		certs = append(certs, cs...)
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificates
	}
	return NewTrustStore(certs...), nil
}

// LoadPEM returns a store of the certificates in the given files and directories. A file holds
// PEM CERTIFICATE blocks or one DER certificate. In a directory, the regular files named *.pem,
// *.crt, *.cer or *.der are read (not recursively). Every named file, and every directory, must
// yield at least one certificate.
func LoadPEM(paths ...string) (*TrustStore, error) {
	var certs []*x509.Certificate
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("smime: trust anchors: %w", err)
		}
		if !st.IsDir() {
			cs, err := loadCertFile(p)
			if err != nil {
				return nil, err
			}
			if len(cs) == 0 {
				return nil, fmt.Errorf("%w in %s", ErrNoCertificates, p)
			}
			certs = append(certs, cs...)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("smime: trust anchors: %w", err)
		}
		n, found := 0, 0
		for _, e := range ents {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".pem", ".crt", ".cer", ".der":
			default:
				continue
			}
			if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			if n++; n > maxAnchorFiles {
				return nil, fmt.Errorf("%w: more than %d files in %s", ErrTooLarge, maxAnchorFiles, p)
			}
			cs, err := loadCertFile(filepath.Join(p, e.Name()))
			if err != nil {
				return nil, err
			}
			found += len(cs)
			certs = append(certs, cs...)
		}
		if found == 0 {
			return nil, fmt.Errorf("%w in directory %s", ErrNoCertificates, p)
		}
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificates
	}
	return NewTrustStore(certs...), nil
}

func loadCertFile(name string) ([]*x509.Certificate, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("smime: trust anchors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("smime: trust anchors: %w", err)
	}
	if st.Size() > maxAnchorFile {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, name, maxAnchorFile)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("smime: trust anchors: %w", err)
	}
	return parseCertsPEM(data, name)
}

// parseCertsPEM parses PEM CERTIFICATE blocks, or one DER certificate when data holds no PEM.
func parseCertsPEM(data []byte, name string) ([]*x509.Certificate, error) {
	where := ""
	if name != "" {
		where = " in " + name
	}
	var certs []*x509.Certificate
	rest := data
	sawPEM := false
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		sawPEM = true
		if b.Type != "CERTIFICATE" && b.Type != "TRUSTED CERTIFICATE" && b.Type != "X509 CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w%s: %v", ErrBadCertificate, where, err)
		}
		certs = append(certs, c)
	}
	if !sawPEM && len(data) > 0 && data[0] == 0x30 {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, fmt.Errorf("%w%s: %v", ErrBadCertificate, where, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// Certificates returns the anchors, sorted by DER. The certificates must not be modified.
func (s *TrustStore) Certificates() []*x509.Certificate {
	return slices.Clone(s.or().certs)
}

// Len returns the number of anchors.
func (s *TrustStore) Len() int { return len(s.or().certs) }

// ID returns the anchor-set identifier: the lower-case hex SHA-256 over the anchors' DER,
// concatenated in ascending byte order. Two stores with the same anchors have the same ID, so
// an archive can snapshot the anchors once per ID.
func (s *TrustStore) ID() string { return s.or().id }

// PEM returns the anchors as PEM CERTIFICATE blocks, in the order of [TrustStore.Certificates]:
// the snapshot an archive keeps.
func (s *TrustStore) PEM() []byte {
	var b bytes.Buffer
	for _, c := range s.or().certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// Contains reports whether c is one of the anchors.
func (s *TrustStore) Contains(c *x509.Certificate) bool {
	for _, a := range s.or().certs {
		if bytes.Equal(a.Raw, c.Raw) {
			return true
		}
	}
	return false
}

func (s *TrustStore) or() *TrustStore {
	if s == nil {
		return DefaultTrustStore()
	}
	return s
}
