package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Policy maps full gRPC method names ("/pecarchive.archive.v1.ArchiveService/Store") to the roles
// allowed to call them. A method that is not in the policy is refused to everyone: a new RPC is
// unreachable until someone decides who may call it.
type Policy map[string][]Role

// Options tune an [Authorizer]. The zero value (or nil) is the safe default.
type Options struct {
	// AllowPlaintextTokens accepts bearer tokens over connections without TLS from peers that are
	// not on the loopback interface. By default a token is accepted only over TLS, from a
	// loopback address, or over an in-process or Unix-socket connection, because anyone on the
	// network path could read and replay it.
	AllowPlaintextTokens bool
	// Public lists full method names anyone may call without credentials (the gRPC health
	// checks, which probes call without any). Use sparingly: they bypass authentication.
	Public []string
}

// Authorizer authenticates the caller of every RPC and checks the method against its [Policy].
// It is safe for concurrent use.
type Authorizer struct {
	policy Policy
	public map[string]bool
	creds  atomic.Pointer[Credentials]
	opts   Options
}

// NewAuthorizer returns an Authorizer for the given credentials and policy. The policy is copied;
// its method names must be full gRPC method names and its roles known ones.
func NewAuthorizer(creds *Credentials, policy Policy, opts *Options) (*Authorizer, error) {
	if creds == nil {
		return nil, fmt.Errorf("%w: nil credentials", ErrCredentials)
	}
	a := &Authorizer{policy: make(Policy, len(policy)), public: map[string]bool{}}
	if opts != nil {
		a.opts = *opts
	}
	for _, m := range a.opts.Public {
		if err := checkMethodName(m); err != nil {
			return nil, err
		}
		if _, ok := policy[m]; ok {
			return nil, fmt.Errorf("%w: method %s is both public and in the policy", ErrPolicy, m)
		}
		a.public[m] = true
	}
	for m, roles := range policy {
		if err := checkMethodName(m); err != nil {
			return nil, err
		}
		if len(roles) == 0 {
			return nil, fmt.Errorf("%w: method %s has no roles (leave it out to refuse it)", ErrPolicy, m)
		}
		for _, r := range roles {
			if !r.Known() {
				return nil, fmt.Errorf("%w: method %s: unknown role %q", ErrPolicy, m, r)
			}
		}
		a.policy[m] = cloneRoles(roles)
	}
	a.creds.Store(creds)
	return a, nil
}

// SetCredentials replaces the credentials (for rotation); RPCs that start afterwards use them.
func (a *Authorizer) SetCredentials(c *Credentials) error {
	if c == nil {
		return fmt.Errorf("%w: nil credentials", ErrCredentials)
	}
	a.creds.Store(c)
	return nil
}

// Authenticate identifies the caller of the RPC whose server context is ctx. A bearer token in
// the "authorization" metadata is used when present (and must then be valid); otherwise the
// verified client certificate of the TLS connection. Errors wrap [ErrUnauthenticated].
func (a *Authorizer) Authenticate(ctx context.Context) (Principal, error) {
	creds := a.creds.Load()
	pr, _ := peer.FromContext(ctx)
	// One key, not a copy of all the metadata (FromIncomingContext copies every key).
	if vals := metadata.ValueFromIncomingContext(ctx, "authorization"); len(vals) > 0 {
		if len(vals) > 1 {
			return Principal{}, fmt.Errorf("%w: more than one authorization value", ErrUnauthenticated)
		}
		tok, ok := bearerToken(vals[0])
		if !ok {
			return Principal{}, fmt.Errorf("%w: authorization is not a bearer token", ErrUnauthenticated)
		}
		if !a.opts.AllowPlaintextTokens && !tokenTransportOK(pr) {
			return Principal{}, fmt.Errorf("%w: bearer token refused over a plaintext connection from %s", ErrUnauthenticated, peerAddr(pr))
		}
		p, ok := creds.token(tok)
		if !ok {
			return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
		}
		return p, nil
	}
	if leaf := verifiedClientCert(pr); leaf != nil {
		p, ok := creds.cert(leaf)
		if !ok {
			return Principal{}, fmt.Errorf("%w: client certificate %v matches no credentials entry", ErrUnauthenticated, CertIdentities(leaf))
		}
		return p, nil
	}
	return Principal{}, fmt.Errorf("%w: no bearer token and no verified client certificate", ErrUnauthenticated)
}

// Authorize authenticates the caller and checks that one of its roles may call fullMethod.
// Errors wrap [ErrUnauthenticated] or [ErrPermissionDenied]. A method of Options.Public is
// allowed to anyone, with a zero Principal.
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string) (Principal, error) {
	if a.public[fullMethod] {
		return Principal{}, nil
	}
	p, err := a.Authenticate(ctx)
	if err != nil {
		return p, err
	}
	roles, ok := a.policy[fullMethod]
	if !ok {
		return p, fmt.Errorf("%w: method %s is not in the policy", ErrPermissionDenied, fullMethod)
	}
	if slices.ContainsFunc(roles, p.Has) {
		return p, nil
	}
	return p, fmt.Errorf("%w: %s needs one of the roles %v; %s has %v", ErrPermissionDenied, fullMethod, roles, p.Name, p.Roles)
}

// UnaryInterceptor returns the server interceptor enforcing [Authorizer.Authorize] on unary RPCs;
// handlers find the caller with [PrincipalFromContext].
func (a *Authorizer) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, StatusError(err)
		}
		return handler(WithPrincipal(ctx, p), req)
	}
}

// StreamInterceptor returns the server interceptor enforcing [Authorizer.Authorize] on streaming
// RPCs.
func (a *Authorizer) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		p, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return StatusError(err)
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: WithPrincipal(ss.Context(), p)})
	}
}

// ServerOptions returns the grpc.ServerOptions installing both interceptors.
func (a *Authorizer) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(a.StreamInterceptor()),
	}
}

// StatusError turns an error of this package into a gRPC status error: Unauthenticated,
// PermissionDenied, or Internal for anything else.
func StatusError(err error) error {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, err.Error())
	case errors.Is(err, ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

func bearerToken(v string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(v), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" || len(tok) > MaxTokenLength {
		return "", false
	}
	return tok, true
}

// tokenTransportOK reports whether a bearer token may be accepted from the peer: over TLS, or
// from a loopback or non-IP (in-process, Unix socket) address.
func tokenTransportOK(pr *peer.Peer) bool {
	if pr == nil {
		return false
	}
	if _, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
		return true
	}
	var ip net.IP
	switch addr := pr.Addr.(type) {
	case *net.TCPAddr:
		ip = addr.IP
	case *net.UDPAddr:
		ip = addr.IP
	case *net.IPAddr:
		ip = addr.IP
	case nil:
		return false
	default:
		return true // Unix socket, in-process pipe
	}
	return ip.IsLoopback()
}

// verifiedClientCert returns the leaf of the first verified chain of a TLS peer, or nil. A
// certificate the server did not verify against its client CAs is ignored.
func verifiedClientCert(pr *peer.Peer) *x509.Certificate {
	if pr == nil {
		return nil
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

func peerAddr(pr *peer.Peer) string {
	if pr == nil || pr.Addr == nil {
		return "an unknown peer"
	}
	return pr.Addr.String()
}

func checkMethodName(m string) error {
	svc, meth, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	if !strings.HasPrefix(m, "/") || !ok || svc == "" || meth == "" || strings.Contains(meth, "/") {
		return fmt.Errorf("%w: %q is not a full method name (/package.Service/Method)", ErrPolicy, m)
	}
	return nil
}

// TokenCredentials returns per-RPC credentials that send token as a bearer token, for clients.
// With requireTLS the gRPC client refuses to send it over a connection without TLS.
func TokenCredentials(token string, requireTLS bool) credentials.PerRPCCredentials {
	return tokenCreds{header: "Bearer " + token, tls: requireTLS}
}

type tokenCreds struct {
	header string
	tls    bool
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": t.header}, nil
}

func (t tokenCreds) RequireTransportSecurity() bool { return t.tls }
