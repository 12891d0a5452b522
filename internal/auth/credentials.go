package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Limits on credentials files and presented credentials.
const (
	MaxCredentialsFileSize = 1 << 20 // bytes
	MaxCredentialEntries   = 10000
	MaxTokenLength         = 1024 // bytes of a presented bearer token
	maxNameLength          = 256
	maxIdentityLength      = 1024
)

// TokenPrefix starts every token made by [GenerateToken]. It only helps people and secret
// scanners recognise a token; any string is accepted.
const TokenPrefix = "pca_"

// Credentials maps bearer tokens (by their SHA-256) and client certificate identities to
// principals. The file format, one entry a line, '#' starts a comment:
//
//	token <sha256-hex-of-token> <principal> <role>[,<role>...]
//	cert  <kind>:<value>        <principal> <role>[,<role>...]
//
// Only the SHA-256 of a token is stored; the token itself is shown once by whoever generated it
// (see [GenerateToken]). A cert entry matches the verified client certificate of a TLS
// connection; kind is "uri" (a URI SAN, e.g. a SPIFFE ID), "dns" (a DNS SAN), "email" (an e-mail
// SAN) or "cn" (the subject common name). A certificate's identities are tried in that order and
// the first entry that matches decides. Roles are among [Roles]. The same principal name may
// appear on several lines (say a token and a certificate).
//
// Credentials are immutable once built; to rotate, build new ones and pass them to
// [Authorizer.SetCredentials].
type Credentials struct {
	tokens map[[sha256.Size]byte]Principal
	certs  map[string]Principal
}

// NewCredentials returns empty credentials (nobody is authenticated).
func NewCredentials() *Credentials {
	return &Credentials{tokens: map[[sha256.Size]byte]Principal{}, certs: map[string]Principal{}}
}

// LoadCredentials reads a credentials file (see [Credentials]).
func LoadCredentials(path string) (*Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: credentials: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCredentialsFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("auth: credentials: %w", err)
	}
	c, err := ParseCredentials(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return c, nil
}

// ParseCredentials parses the content of a credentials file (see [Credentials]).
func ParseCredentials(data []byte) (*Credentials, error) {
	if len(data) > MaxCredentialsFileSize {
		return nil, fmt.Errorf("%w: file over %d bytes", ErrCredentials, MaxCredentialsFileSize)
	}
	c := NewCredentials()
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxCredentialsFileSize)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("%w: line %d: want 4 fields (type, key, principal, roles), have %d", ErrCredentials, n, len(f))
		}
		roles, err := parseRoles(f[3])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		p := Principal{Name: f[2], Roles: roles}
		switch f[0] {
		case "token":
			var sum [sha256.Size]byte
			if sum, err = parseTokenHash(f[1]); err == nil {
				err = c.AddToken(sum, p)
			}
		case "cert":
			err = c.AddCert(f[1], p)
		default:
			return nil, fmt.Errorf("%w: line %d: unknown entry type %q (want token or cert)", ErrCredentials, n, f[0])
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	return c, nil
}

// AddToken adds a principal authenticated by the token whose SHA-256 is sum.
func (c *Credentials) AddToken(sum [sha256.Size]byte, p Principal) error {
	if err := checkPrincipal(p); err != nil {
		return err
	}
	if len(c.tokens)+len(c.certs) >= MaxCredentialEntries {
		return fmt.Errorf("%w: more than %d entries", ErrCredentials, MaxCredentialEntries)
	}
	if _, dup := c.tokens[sum]; dup {
		return fmt.Errorf("%w: duplicate token %x", ErrCredentials, sum)
	}
	p.Method, p.Identity, p.Roles = MethodToken, "", cloneRoles(p.Roles)
	c.tokens[sum] = p
	return nil
}

// AddCert adds a principal authenticated by a verified client certificate with the identity id
// ("uri:...", "dns:...", "email:..." or "cn:...").
func (c *Credentials) AddCert(id string, p Principal) error {
	if err := checkPrincipal(p); err != nil {
		return err
	}
	kind, value, ok := strings.Cut(id, ":")
	switch {
	case !ok || value == "" || len(id) > maxIdentityLength:
		return fmt.Errorf("%w: certificate identity %q: want kind:value", ErrCredentials, id)
	case kind != "uri" && kind != "dns" && kind != "email" && kind != "cn":
		return fmt.Errorf("%w: certificate identity %q: kind must be uri, dns, email or cn", ErrCredentials, id)
	}
	id = normaliseIdentity(kind, value)
	if len(c.tokens)+len(c.certs) >= MaxCredentialEntries {
		return fmt.Errorf("%w: more than %d entries", ErrCredentials, MaxCredentialEntries)
	}
	if _, dup := c.certs[id]; dup {
		return fmt.Errorf("%w: duplicate certificate identity %q", ErrCredentials, id)
	}
	p.Method, p.Identity, p.Roles = MethodMTLS, id, cloneRoles(p.Roles)
	c.certs[id] = p
	return nil
}

// Len returns the number of entries.
func (c *Credentials) Len() int { return len(c.tokens) + len(c.certs) }

// token returns the principal of a presented bearer token.
func (c *Credentials) token(tok string) (Principal, bool) {
	// Looking up the SHA-256 of the token, never the token, leaks nothing useful through timing.
	p, ok := c.tokens[sha256.Sum256([]byte(tok))]
	p.Roles = cloneRoles(p.Roles)
	return p, ok
}

// cert returns the principal of a verified client certificate.
func (c *Credentials) cert(leaf *x509.Certificate) (Principal, bool) {
	for _, id := range CertIdentities(leaf) {
		if p, ok := c.certs[id]; ok {
			p.Roles = cloneRoles(p.Roles)
			return p, true
		}
	}
	return Principal{}, false
}

// CertIdentities returns the identities of a certificate in matching order: URI SANs, DNS SANs,
// e-mail SANs, then the subject common name, each as "kind:value".
func CertIdentities(cert *x509.Certificate) []string {
	var ids []string
	for _, u := range cert.URIs {
		ids = append(ids, normaliseIdentity("uri", u.String()))
	}
	for _, d := range cert.DNSNames {
		ids = append(ids, normaliseIdentity("dns", d))
	}
	for _, e := range cert.EmailAddresses {
		ids = append(ids, normaliseIdentity("email", e))
	}
	if cn := cert.Subject.CommonName; cn != "" {
		ids = append(ids, normaliseIdentity("cn", cn))
	}
	return ids
}

// normaliseIdentity lower-cases what is case-insensitive: DNS names, e-mail addresses (whole:
// PEC and certificate addresses are compared case-insensitively in practice).
func normaliseIdentity(kind, value string) string {
	switch kind {
	case "dns", "email":
		value = strings.ToLower(value)
	}
	return kind + ":" + value
}

// HashToken returns the SHA-256 of a token, in hex, as written in a credentials file.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// GenerateToken returns a new random bearer token (256 bits from crypto/rand) and its hash for a
// credentials file.
func GenerateToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("auth: generate token: %w", err)
	}
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashToken(token), nil
}

func parseTokenHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) != 2*sha256.Size {
		return sum, fmt.Errorf("%w: token hash must be 64 hex digits (the SHA-256 of the token, never the token)", ErrCredentials)
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, fmt.Errorf("%w: token hash: %v", ErrCredentials, err)
	}
	return sum, nil
}

func parseRoles(s string) ([]Role, error) {
	var roles []Role
	for r := range strings.SplitSeq(s, ",") {
		role := Role(strings.TrimSpace(r))
		if !role.Known() {
			return nil, fmt.Errorf("%w: unknown role %q (known: %v)", ErrCredentials, role, Roles)
		}
		if !slices.Contains(roles, role) {
			roles = append(roles, role)
		}
	}
	return roles, nil
}

func checkPrincipal(p Principal) error {
	if p.Name == "" || len(p.Name) > maxNameLength || strings.ContainsFunc(p.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: principal name %q: want 1 to %d printable characters without spaces", ErrCredentials, p.Name, maxNameLength)
	}
	if len(p.Roles) == 0 {
		return fmt.Errorf("%w: principal %q has no roles", ErrCredentials, p.Name)
	}
	for _, r := range p.Roles {
		if !r.Known() {
			return fmt.Errorf("%w: principal %q: unknown role %q", ErrCredentials, p.Name, r)
		}
	}
	return nil
}

func cloneRoles(r []Role) []Role { return append([]Role(nil), r...) }
