package auth_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/auth/authtest"
)

func TestParseCredentials(t *testing.T) {
	tok, hash, err := auth.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, auth.TokenPrefix) || len(hash) != 64 || auth.HashToken(tok) != hash {
		t.Fatalf("GenerateToken = %q, %q", tok, hash)
	}
	file := fmt.Sprintf(`# pecarchive credentials
token %s ingest-1 ingest   # the IMAP ingester
token sha256:%s  ops admin,reader,admin

cert dns:Ingest.Example.TEST ingest-2 ingest
cert uri:spiffe://pecarchive/query query reader,auditor
`, hash, auth.HashToken("other"))
	c, err := auth.ParseCredentials([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 4 {
		t.Errorf("Len = %d, want 4", c.Len())
	}

	bad := map[string]string{
		"fields":       "token " + hash + " ingest\n",
		"type":         "user " + hash + " x ingest\n",
		"short hash":   "token abcd x ingest\n",
		"not hex":      "token " + strings.Repeat("zz", 32) + " x ingest\n",
		"role":         "token " + hash + " x ingester\n",
		"empty role":   "token " + hash + " x ingest,\n",
		"dup token":    "token " + hash + " x ingest\ntoken " + hash + " y reader\n",
		"cert kind":    "cert ip:127.0.0.1 x ingest\n",
		"cert value":   "cert dns: x ingest\n",
		"dup cert":     "cert dns:a.test x ingest\ncert dns:A.test y reader\n",
		"control char": "token " + hash + " x\x01y ingest\n",
		"too big":      strings.Repeat("#", auth.MaxCredentialsFileSize+1),
	}
	for name, in := range bad {
		if _, err := auth.ParseCredentials([]byte(in)); !errors.Is(err, auth.ErrCredentials) {
			t.Errorf("%s: err = %v, want ErrCredentials", name, err)
		}
	}
}

func TestNewAuthorizerPolicy(t *testing.T) {
	c := auth.NewCredentials()
	for name, p := range map[string]auth.Policy{
		"name":     {"Check": {auth.RoleReader}},
		"no roles": {healthpb.Health_Check_FullMethodName: nil},
		"role":     {healthpb.Health_Check_FullMethodName: {"root"}},
	} {
		if _, err := auth.NewAuthorizer(c, p, nil); !errors.Is(err, auth.ErrPolicy) {
			t.Errorf("%s: err = %v, want ErrPolicy", name, err)
		}
	}
}

// env is a health server behind an Authorizer on 127.0.0.1:0 with TLS; client certificates are
// verified when given (so both token-only and mTLS clients can connect).
type env struct {
	addr    string
	dir     string
	ca      *authtest.CA
	caFile  string
	authz   *auth.Authorizer
	mu      sync.Mutex
	callers []auth.Principal // principals seen by handlers
}

var policy = auth.Policy{
	healthpb.Health_Check_FullMethodName: {auth.RoleReader, auth.RoleAdmin},
	healthpb.Health_Watch_FullMethodName: {auth.RoleReader, auth.RoleAdmin},
	// Health/List deliberately missing: refused to everyone.
}

const (
	readerToken = "reader-secret"
	ingestToken = "ingest-secret"
	adminToken  = "admin-secret"
)

// TLS modes of newEnv.
const (
	plaintext = iota
	tlsOptional
	tlsRequired
)

func newEnv(t *testing.T, mode int) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), ca: authtest.NewCA(t, "test client CA")}
	e.caFile = e.ca.WriteFile(t, e.dir, "ca")
	creds, err := auth.ParseCredentials([]byte(fmt.Sprintf(`
token %s reader-1 reader
token %s ingest-1 ingest
token %s admin-1 admin
cert dns:reader.pecarchive.test reader-2 reader
cert uri:spiffe://pecarchive.test/ingest ingest-2 ingest
`, auth.HashToken(readerToken), auth.HashToken(ingestToken), auth.HashToken(adminToken))))
	if err != nil {
		t.Fatal(err)
	}
	e.authz, err = auth.NewAuthorizer(creds, policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	record := func(ctx context.Context) {
		p, ok := auth.PrincipalFromContext(ctx)
		if !ok {
			t.Error("handler: no principal in context")
		}
		e.mu.Lock()
		e.callers = append(e.callers, p)
		e.mu.Unlock()
	}
	opts := append(e.authz.ServerOptions(),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(srv, ss)
		}))
	if mode != plaintext {
		certFile, keyFile := e.ca.IssueFiles(t, e.dir, "server", authtest.Localhost)
		cfg, err := auth.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: e.caFile, ClientCertOptional: mode == tlsOptional}.Config()
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return e
}

// client dials the env; token may be empty; cert selects a client certificate issued by ca (nil:
// none).
func (e *env) client(t *testing.T, tlsOn bool, token string, ca *authtest.CA, leaf *authtest.Leaf) healthpb.HealthClient {
	t.Helper()
	var opts []grpc.DialOption
	if tlsOn {
		ct := auth.ClientTLS{CAFile: e.caFile}
		if leaf != nil {
			ct.CertFile, ct.KeyFile = ca.IssueFiles(t, t.TempDir(), "client", *leaf)
		}
		cfg, err := ct.Config()
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.TokenCredentials(token, tlsOn)))
	}
	cc, err := grpc.NewClient(e.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func check(t *testing.T, c healthpb.HealthClient) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	return status.Code(err)
}

func TestTokens(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			mode := plaintext
			if tlsOn {
				mode = tlsOptional
			}
			e := newEnv(t, mode)
			for _, tc := range []struct {
				name, token string
				want        codes.Code
			}{
				{"reader ok", readerToken, codes.OK},
				{"admin ok", adminToken, codes.OK},
				{"missing", "", codes.Unauthenticated},
				{"unknown", "guess", codes.Unauthenticated},
				{"wrong role", ingestToken, codes.PermissionDenied},
			} {
				if got := check(t, e.client(t, tlsOn, tc.token, nil, nil)); got != tc.want {
					t.Errorf("%s: code %v, want %v", tc.name, got, tc.want)
				}
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			if len(e.callers) != 2 || e.callers[0].Name != "reader-1" || e.callers[0].Method != auth.MethodToken || e.callers[1].Name != "admin-1" {
				t.Errorf("handlers saw %+v, want reader-1 then admin-1 (nobody else)", e.callers)
			}
		})
	}
}

func TestMethodNotInPolicyDenied(t *testing.T) {
	e := newEnv(t, plaintext)
	for _, tok := range []string{adminToken, readerToken} {
		_, err := e.client(t, false, tok, nil, nil).List(context.Background(), &healthpb.HealthListRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("List with %s: %v, want PermissionDenied", tok, err)
		}
	}
	// Unauthenticated callers learn nothing about the policy.
	_, err := e.client(t, false, "", nil, nil).List(context.Background(), &healthpb.HealthListRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("List without credentials: %v, want Unauthenticated", err)
	}
}

func TestStreamInterceptor(t *testing.T) {
	e := newEnv(t, plaintext)
	watch := func(token string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := e.client(t, false, token, nil, nil).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	if err := watch(readerToken); err != nil {
		t.Errorf("reader Watch: %v", err)
	}
	if err := watch(ingestToken); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ingest Watch: %v, want PermissionDenied", err)
	}
	if err := watch(""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("anonymous Watch: %v, want Unauthenticated", err)
	}
}

func TestMTLS(t *testing.T) {
	e := newEnv(t, tlsOptional)
	reader := authtest.Leaf{CommonName: "whoever", DNSNames: []string{"Reader.pecarchive.test"}, Client: true}
	ingest := authtest.Leaf{CommonName: "reader.pecarchive.test", URIs: []string{"spiffe://pecarchive.test/ingest"}, Client: true}
	stranger := authtest.Leaf{CommonName: "stranger", DNSNames: []string{"stranger.test"}, Client: true}
	other := authtest.NewCA(t, "unknown CA")

	if got := check(t, e.client(t, true, "", e.ca, &reader)); got != codes.OK {
		t.Errorf("reader certificate: %v, want OK", got)
	}
	// The URI SAN matches before the common name (which names the reader).
	if got := check(t, e.client(t, true, "", e.ca, &ingest)); got != codes.PermissionDenied {
		t.Errorf("ingest certificate: %v, want PermissionDenied", got)
	}
	if got := check(t, e.client(t, true, "", e.ca, &stranger)); got != codes.Unauthenticated {
		t.Errorf("certificate not in credentials: %v, want Unauthenticated", got)
	}
	// A certificate from another CA fails the handshake even where certificates are optional.
	if got := check(t, e.client(t, true, readerToken, other, &reader)); got != codes.Unavailable {
		t.Errorf("unknown CA: %v, want Unavailable (handshake refused)", got)
	}
	// A token, when sent, decides (here over a verified ingest certificate).
	if got := check(t, e.client(t, true, readerToken, e.ca, &ingest)); got != codes.OK {
		t.Errorf("reader token over ingest certificate: %v, want OK", got)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.callers) != 2 || e.callers[0].Name != "reader-2" || e.callers[0].Method != auth.MethodMTLS ||
		e.callers[0].Identity != "dns:reader.pecarchive.test" || e.callers[1].Name != "reader-1" {
		t.Errorf("handlers saw %+v", e.callers)
	}
}

func TestMTLSRequired(t *testing.T) {
	e := newEnv(t, tlsRequired)
	reader := authtest.Leaf{DNSNames: []string{"reader.pecarchive.test"}, Client: true}
	if got := check(t, e.client(t, true, "", e.ca, &reader)); got != codes.OK {
		t.Errorf("reader certificate: %v, want OK", got)
	}
	// Without a certificate from the client CA the handshake fails: no RPC reaches the server,
	// not even with a valid token.
	if got := check(t, e.client(t, true, readerToken, authtest.NewCA(t, "unknown CA"), &reader)); got != codes.Unavailable {
		t.Errorf("unknown CA: %v, want Unavailable (handshake refused)", got)
	}
	if got := check(t, e.client(t, true, readerToken, nil, nil)); got != codes.Unavailable {
		t.Errorf("no client certificate: %v, want Unavailable (handshake refused)", got)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.callers) != 1 {
		t.Errorf("handlers saw %+v, want one caller", e.callers)
	}
}

func TestServerTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := authtest.NewCA(t, "ca")
	certFile, keyFile := ca.IssueFiles(t, dir, "server", authtest.Localhost)
	outer, err := auth.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.WriteFile(t, dir, "ca")}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := outer.GetConfigForClient(nil)
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.MinVersion != tls.VersionTLS13 || outer.MinVersion != tls.VersionTLS13 {
		t.Errorf("ClientAuth %v MinVersion %x", cfg.ClientAuth, cfg.MinVersion)
	}
	cfg, err = auth.ServerTLS{CertFile: certFile, KeyFile: keyFile, ReloadInterval: -1}.Config()
	if err != nil || cfg.ClientAuth != tls.NoClientCert || cfg.GetConfigForClient != nil {
		t.Errorf("without client CA, no reloading: %v, %v", cfg.ClientAuth, err)
	}
	for name, st := range map[string]auth.ServerTLS{
		"no key":     {CertFile: certFile},
		"missing ca": {CertFile: certFile, KeyFile: keyFile, ClientCAFile: dir + "/none"},
		"ca not pem": {CertFile: certFile, KeyFile: keyFile, ClientCAFile: keyFile},
		"swapped":    {CertFile: keyFile, KeyFile: certFile},
	} {
		if _, err := st.Config(); !errors.Is(err, auth.ErrTLS) {
			t.Errorf("%s: %v, want ErrTLS", name, err)
		}
	}
	if _, err := (auth.ClientTLS{CertFile: certFile}).Config(); !errors.Is(err, auth.ErrTLS) {
		t.Errorf("client cert without key: %v", err)
	}
}

func TestSetCredentials(t *testing.T) {
	e := newEnv(t, plaintext)
	c := e.client(t, false, readerToken, nil, nil)
	if got := check(t, c); got != codes.OK {
		t.Fatalf("before rotation: %v", got)
	}
	creds := auth.NewCredentials()
	if err := creds.AddToken([32]byte{}, auth.Principal{Name: "x", Roles: []auth.Role{auth.RoleReader}}); err != nil {
		t.Fatal(err)
	}
	if err := e.authz.SetCredentials(creds); err != nil {
		t.Fatal(err)
	}
	if got := check(t, c); got != codes.Unauthenticated {
		t.Errorf("after rotation: %v, want Unauthenticated", got)
	}
}

func TestPlaintextTokenFromRemotePeer(t *testing.T) {
	creds := auth.NewCredentials()
	if err := creds.AddToken(sha(readerToken), auth.Principal{Name: "r", Roles: []auth.Role{auth.RoleReader}}); err != nil {
		t.Fatal(err)
	}
	md := metadata.Pairs("authorization", "Bearer "+readerToken)
	for _, tc := range []struct {
		addr  net.Addr
		allow bool
		ok    bool
	}{
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5}, false, false},
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5}, true, true},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}, false, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 5}, false, true},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, false, true},
	} {
		a, err := auth.NewAuthorizer(creds, policy, &auth.Options{AllowPlaintextTokens: tc.allow})
		if err != nil {
			t.Fatal(err)
		}
		ctx := peer.NewContext(metadata.NewIncomingContext(context.Background(), md), &peer.Peer{Addr: tc.addr})
		p, err := a.Authenticate(ctx)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, auth.ErrUnauthenticated)) {
			t.Errorf("%v allow=%v: %+v, %v", tc.addr, tc.allow, p, err)
		}
	}
	// Malformed authorization values.
	a, _ := auth.NewAuthorizer(creds, policy, nil)
	for _, v := range [][]string{{"Basic abc"}, {"Bearer"}, {"Bearer " + strings.Repeat("x", auth.MaxTokenLength+1)}, {"Bearer " + readerToken, "Bearer " + readerToken}} {
		md := metadata.MD{"authorization": v}
		ctx := peer.NewContext(metadata.NewIncomingContext(context.Background(), md), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}})
		if _, err := a.Authenticate(ctx); !errors.Is(err, auth.ErrUnauthenticated) {
			t.Errorf("%q: %v, want ErrUnauthenticated", v, err)
		}
	}
	// The scheme is case-insensitive.
	ctx := peer.NewContext(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "bearer "+readerToken)), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}})
	if p, err := a.Authenticate(ctx); err != nil || p.Name != "r" {
		t.Errorf("lower-case scheme: %+v, %v", p, err)
	}
}

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }

func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := authtest.NewCA(t, "ca1"), authtest.NewCA(t, "ca2")
	serverTLS := auth.ServerTLS{CertFile: dir + "/server.crt", KeyFile: dir + "/server.key", ClientCAFile: dir + "/clients.crt", ReloadInterval: time.Millisecond}
	install := func(ca *authtest.CA) {
		ca.IssueFiles(t, dir, "server", authtest.Localhost)
		ca.WriteFile(t, dir, "clients")
	}
	install(ca1)
	cfg, err := serverTLS.Config()
	if err != nil {
		t.Fatal(err)
	}
	creds := auth.NewCredentials()
	if err := creds.AddCert("dns:reader.test", auth.Principal{Name: "r", Roles: []auth.Role{auth.RoleReader}}); err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer(creds, policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(append(authz.ServerOptions(), grpc.Creds(credentials.NewTLS(cfg)))...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	call := func(ca *authtest.CA) codes.Code {
		cdir := t.TempDir()
		certFile, keyFile := ca.IssueFiles(t, cdir, "client", authtest.Leaf{DNSNames: []string{"reader.test"}, Client: true})
		ccfg, err := auth.ClientTLS{CAFile: ca.WriteFile(t, cdir, "ca"), CertFile: certFile, KeyFile: keyFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ccfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		return check(t, healthpb.NewHealthClient(cc))
	}
	if got := call(ca1); got != codes.OK {
		t.Fatalf("before rotation: %v", got)
	}
	// A renewal that does not parse is ignored: the old material keeps serving.
	authtest.WriteFile(t, dir, "clients.crt", []byte("not PEM"))
	time.Sleep(5 * time.Millisecond)
	if got := call(ca1); got != codes.OK {
		t.Fatalf("after a broken renewal: %v", got)
	}
	install(ca2)
	time.Sleep(5 * time.Millisecond)
	if got := call(ca2); got != codes.OK {
		t.Errorf("after rotation to ca2: %v", got)
	}
	if got := call(ca1); got != codes.Unavailable {
		t.Errorf("ca1 after rotation: %v, want Unavailable", got)
	}
}

// A public method answers without credentials (and ignores bad ones); the others still need
// them; a method cannot be both public and in the policy.
func TestPublicMethods(t *testing.T) {
	creds := auth.NewCredentials()
	if _, err := auth.NewAuthorizer(creds, policy, &auth.Options{Public: []string{healthpb.Health_Check_FullMethodName}}); !errors.Is(err, auth.ErrPolicy) {
		t.Errorf("public and in the policy: %v, want ErrPolicy", err)
	}
	if _, err := auth.NewAuthorizer(creds, nil, &auth.Options{Public: []string{"not a method"}}); !errors.Is(err, auth.ErrPolicy) {
		t.Errorf("bad public method name: %v, want ErrPolicy", err)
	}
	authz, err := auth.NewAuthorizer(creds, auth.Policy{healthpb.Health_Watch_FullMethodName: {auth.RoleReader}},
		&auth.Options{Public: []string{healthpb.Health_Check_FullMethodName}})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(authz.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	for _, tok := range []string{"", "wrong"} {
		opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		if tok != "" {
			opts = append(opts, grpc.WithPerRPCCredentials(auth.TokenCredentials(tok, false)))
		}
		cc, err := grpc.NewClient(lis.Addr().String(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		c := healthpb.NewHealthClient(cc)
		if got := check(t, c); got != codes.OK {
			t.Errorf("public Check with token %q: %v, want OK", tok, got)
		}
		_, err = c.List(context.Background(), &healthpb.HealthListRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("List with token %q: %v, want Unauthenticated", tok, err)
		}
	}
}
