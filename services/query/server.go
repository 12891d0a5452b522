package query

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
)

// DefaultPolicy returns the role table of the query API, deny by default: "backoffice" may
// prove, search, fetch and export evidence bundles; "service" may prove and fetch; "auditor" may call everything,
// checkpoints and log proofs included. Server reflection needs one of these roles; health
// checks need none ([PublicMethods]).
func DefaultPolicy() auth.Policy {
	all := []auth.Role{auth.RoleBackoffice, auth.RoleService, auth.RoleAuditor}
	return auth.Policy{
		querypb.EvidenceService_ProveDelivery_FullMethodName:                   all,
		querypb.EvidenceService_GetMessage_FullMethodName:                      all,
		querypb.EvidenceService_SearchMessages_FullMethodName:                  {auth.RoleBackoffice, auth.RoleAuditor},
		querypb.EvidenceService_ExportEvidenceBundle_FullMethodName:            {auth.RoleBackoffice, auth.RoleAuditor},
		querypb.EvidenceService_GetCheckpoint_FullMethodName:                   {auth.RoleAuditor},
		querypb.EvidenceService_GetInclusionProof_FullMethodName:               {auth.RoleAuditor},
		querypb.EvidenceService_GetConsistencyProof_FullMethodName:             {auth.RoleAuditor},
		reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      all,
		reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: all,
	}
}

// PublicMethods are the gRPC health checks, which load balancers and probes call without
// credentials.
func PublicMethods() []string {
	return []string{healthpb.Health_Check_FullMethodName, healthpb.Health_Watch_FullMethodName, healthpb.Health_List_FullMethodName}
}

// Handler goroutines kept to run calls, and the HTTP/2 flow-control windows of a stream and of a
// connection (GetMessage streams at most 256 KiB per message).
const (
	streamWorkers = 64
	streamWindow  = 1 << 20
	connWindow    = 4 << 20
)

// ServerConfig configures a [Server].
type ServerConfig struct {
	// Service answers the RPCs. Required.
	Service *Service
	// Authorizer authenticates and authorises every RPC (see [DefaultPolicy] and
	// [PublicMethods]). Required.
	Authorizer *auth.Authorizer
	// TLS is the server's TLS configuration (see auth.ServerTLS); nil serves plaintext, which is
	// only fit for loopback and in-process use.
	TLS *tls.Config
	// Log receives the errors the service hides from its callers (a store's failure); nil
	// drops them.
	Log *slog.Logger
}

// Server is a grpc.Server serving the query API behind authentication, with gRPC health
// checking and server reflection.
type Server struct {
	grpc     *grpc.Server
	health   *health.Server
	handlers *Handlers
}

// NewServer returns the server; call Serve to accept connections.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Service == nil || cfg.Authorizer == nil {
		return nil, errors.New("query: ServerConfig.Service and ServerConfig.Authorizer are required")
	}
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(1 << 20),
		// Reused handler goroutines keep their grown stacks (a new goroutine per call grows its
		// stack again on every call), and fixed flow-control windows spare every call a
		// bandwidth-estimation ping: both measured worth it on the archive's server.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second, PermitWithoutStream: true}),
	}, cfg.Authorizer.ServerOptions()...)
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	g := grpc.NewServer(opts...)
	h := NewHandlers(cfg.Service, cfg.Log)
	querypb.RegisterEvidenceServiceServer(g, h)
	hs := health.NewServer()
	hs.SetServingStatus(querypb.EvidenceService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	reflection.Register(g)
	return &Server{grpc: g, health: hs, handlers: h}, nil
}

// Handlers returns the RPC handlers, to call them in-process (with a context carrying the
// caller: auth.WithPrincipal).
func (s *Server) Handlers() *Handlers { return s.handlers }

// Serve accepts connections on lis until Stop or GracefulStop.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(lis); err != nil {
		return fmt.Errorf("query: %w", err)
	}
	return nil
}

// GracefulStop reports NOT_SERVING to health checks, stops accepting connections and waits for
// running RPCs to finish.
func (s *Server) GracefulStop() {
	s.health.Shutdown()
	s.grpc.GracefulStop()
}

// Stop closes all connections and cancels running RPCs.
func (s *Server) Stop() { s.grpc.Stop() }
