// Package auth owns authentication and authorisation of pecarchive's gRPC APIs: who the caller is
// (a bearer token or a verified mTLS client certificate, looked up in a credentials file) and
// whether one of the caller's roles may call the method (a per-method role table, deny by
// default). It provides the unary and stream server interceptors that enforce both on every RPC,
// and TLS configuration helpers for servers and clients.
//
// Failures are [ErrUnauthenticated] or [ErrPermissionDenied] (usable with errors.Is); the
// interceptors turn them into the gRPC codes Unauthenticated and PermissionDenied.
package auth

import (
	"context"
	"errors"
	"slices"
)

// Sentinel errors.
var (
	// ErrUnauthenticated: no credentials, or credentials that identify no known principal.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
	// ErrPermissionDenied: the principal's roles do not allow the method, or the method is not in
	// the policy at all.
	ErrPermissionDenied = errors.New("auth: permission denied")
	// ErrCredentials: a malformed credentials file or entry.
	ErrCredentials = errors.New("auth: bad credentials")
	// ErrPolicy: a malformed policy.
	ErrPolicy = errors.New("auth: bad policy")
	// ErrTLS: unusable TLS material (certificate, key or CA file).
	ErrTLS = errors.New("auth: bad TLS configuration")
)

// Role is a named set of permissions a principal holds.
type Role string

// The roles pecarchive knows. A credentials file naming any other role is refused, so a typo
// cannot silently grant or withhold access.
const (
	// RoleIngest may store messages in the archive.
	RoleIngest Role = "ingest"
	// RoleReader may read records, messages and proofs.
	RoleReader Role = "reader"
	// RoleAuditor may read everything a reader may, and export evidence and audit trails; of the
	// query service, everything (proofs, searches, messages, checkpoints and log proofs).
	RoleAuditor Role = "auditor"
	// RoleAdmin may call every method listed in a policy for it.
	RoleAdmin Role = "admin"
	// RoleBackoffice may ask the query service to prove deliveries, search messages and fetch
	// them: the people of an Order's back office.
	RoleBackoffice Role = "backoffice"
	// RoleService may ask the query service to prove deliveries and fetch messages: other
	// services checking a notice before they act on it.
	RoleService Role = "service"
	// RoleRecorder may record reads of evidence in the archive: the query service.
	RoleRecorder Role = "recorder"
)

// Roles lists every known role.
var Roles = []Role{RoleIngest, RoleReader, RoleAuditor, RoleAdmin, RoleBackoffice, RoleService, RoleRecorder}

// Known reports whether r is one of [Roles].
func (r Role) Known() bool { return slices.Contains(Roles, r) }

// Method says how a principal was authenticated.
type Method string

const (
	MethodToken Method = "token" // bearer token in the "authorization" metadata
	MethodMTLS  Method = "mtls"  // verified TLS client certificate
)

// Principal is an authenticated caller.
type Principal struct {
	// Name identifies the caller in audit records (the name given in the credentials file).
	Name string
	// Roles the principal holds.
	Roles []Role
	// Method says how the principal was authenticated.
	Method Method
	// Identity is the certificate identity that matched ("dns:...", "uri:...", "email:...",
	// "cn:..."), empty for tokens.
	Identity string
}

// Has reports whether p holds role r.
func (p Principal) Has(r Role) bool { return slices.Contains(p.Roles, r) }

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal the interceptors authenticated for this RPC.
func PrincipalFromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
