package auth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
)

// maxPEMFile bounds the certificate, key and CA files read.
const maxPEMFile = 1 << 20

// ServerTLS describes a server's TLS material, as PEM files.
type ServerTLS struct {
	CertFile, KeyFile string // the server certificate chain and its private key
	// ClientCAFile holds the CA certificates client certificates must chain to. When set, the
	// server requires and verifies a client certificate on every connection (mTLS); when empty,
	// clients are not asked for one and must authenticate with bearer tokens.
	ClientCAFile string
	// ClientCertOptional, with ClientCAFile set, verifies a client certificate when one is sent
	// but also accepts connections without one (whose RPCs then need a bearer token).
	ClientCertOptional bool
}

// ClientTLS describes a client's TLS material, as PEM files.
type ClientTLS struct {
	// CAFile holds the CA certificates the server certificate must chain to; empty means the
	// system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate chain and key for mTLS; both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server certificate (default: from the target).
	ServerName string
}

// Config returns the server *tls.Config (TLS 1.3 only). Use it with
// google.golang.org/grpc/credentials.NewTLS.
func (s ServerTLS) Config() (*tls.Config, error) {
	if s.CertFile == "" || s.KeyFile == "" {
		return nil, fmt.Errorf("%w: server certificate and key files are required", ErrTLS)
	}
	cert, err := loadKeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
	}
	if s.ClientCAFile != "" {
		pool, err := loadPool(s.ClientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if s.ClientCertOptional {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}

// Config returns the client *tls.Config (TLS 1.3 only).
func (c ClientTLS) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := loadKeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.CertFile != "" || c.KeyFile != "":
		return nil, fmt.Errorf("%w: client certificate and key files go together", ErrTLS)
	}
	return cfg, nil
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readPEM(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readPEM(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %s, %s: %v", ErrTLS, certFile, keyFile, err)
	}
	return cert, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	data, err := readPEM(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrTLS, file)
	}
	return pool, nil
}

func readPEM(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTLS, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTLS, file, err)
	}
	if len(data) > maxPEMFile {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTLS, file, maxPEMFile)
	}
	return data, nil
}
