package auth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// maxPEMFile bounds the certificate, key and CA files read.
const maxPEMFile = 1 << 20

// DefaultReloadInterval is how often TLS files are checked for changes by default.
const DefaultReloadInterval = time.Minute

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
	// ReloadInterval is how often the files are checked for changes (a renewed certificate, a
	// new client CA bundle, as when Kubernetes updates a mounted secret); changed files are
	// reloaded for new connections, and material that does not load is ignored until it does.
	// Zero means DefaultReloadInterval; negative disables reloading.
	ReloadInterval time.Duration
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
	// ReloadInterval is how often the client certificate and key are checked for changes and
	// reloaded (the CA file is read once). Zero means DefaultReloadInterval; negative disables.
	ReloadInterval time.Duration
}

// Config returns the server *tls.Config (TLS 1.3 only, ALPN "h2") for gRPC: use it with
// google.golang.org/grpc/credentials.NewTLS. It fails when the files do not load now; later
// changes are picked up as ReloadInterval says.
func (s ServerTLS) Config() (*tls.Config, error) {
	cfg, err := s.build()
	if err != nil || s.ReloadInterval < 0 {
		return cfg, err
	}
	files := []string{s.CertFile, s.KeyFile}
	if s.ClientCAFile != "" {
		files = append(files, s.ClientCAFile)
	}
	r := &reloader[*tls.Config]{interval: s.ReloadInterval, files: files, build: s.build, cur: cfg}
	r.init()
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.get(), nil
		},
	}, nil
}

func (s ServerTLS) build() (*tls.Config, error) {
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
		NextProtos:   []string{"h2"},
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
		load := func() (*tls.Certificate, error) {
			cert, err := loadKeyPair(c.CertFile, c.KeyFile)
			return &cert, err
		}
		cert, err := load()
		if err != nil {
			return nil, err
		}
		if c.ReloadInterval < 0 {
			cfg.Certificates = []tls.Certificate{*cert}
			break
		}
		r := &reloader[*tls.Certificate]{interval: c.ReloadInterval, files: []string{c.CertFile, c.KeyFile}, build: load, cur: cert}
		r.init()
		// Sent whatever CAs the server names: the server decides.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.get(), nil
		}
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

// reloader keeps a value built from files, rebuilding it when their size or modification time
// changed, checked at most once per interval. A rebuild that fails keeps the previous value (a
// renewal may be half written) and is tried again at the next check.
type reloader[T any] struct {
	interval time.Duration
	files    []string
	build    func() (T, error)

	mu      sync.Mutex
	cur     T
	stamp   string
	checked time.Time
}

func (r *reloader[T]) init() {
	if r.interval == 0 {
		r.interval = DefaultReloadInterval
	}
	r.stamp, r.checked = fileStamp(r.files), time.Now()
}

func (r *reloader[T]) get() T {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= r.interval {
		r.checked = time.Now()
		if st := fileStamp(r.files); st != r.stamp {
			if v, err := r.build(); err == nil {
				r.cur, r.stamp = v, st
			}
		}
	}
	return r.cur
}

// fileStamp summarises the size and modification time of files (following symbolic links, as
// Kubernetes secret volumes use them).
func fileStamp(files []string) string {
	var b strings.Builder
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d.%d;", st.Size(), st.ModTime().UnixNano())
		} else {
			b.WriteString("?;")
		}
	}
	return b.String()
}
