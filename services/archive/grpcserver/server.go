// Package grpcserver owns the archive's internal gRPC API (pecarchive.archive.v1.ArchiveService):
// it receives raw messages over the client-streaming Store RPC within strict size and memory
// limits, checks the bytes against what the client declared, hands them to the archive core, and
// serves records and transparency-log proofs through the read-only evidence reader
// (services/archive/reader). Its handlers are the only place where the errors of the archive and
// of the reader, already sorted into kinds, become gRPC status codes. Every RPC is authenticated and
// authorised by internal/auth (see [DefaultPolicy]).
package grpcserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
)

// Limits.
const (
	// MaxChunkSize is the largest chunk a Store request may carry.
	MaxChunkSize = 1 << 20
	// DefaultMaxMessageSize is the default limit on one stored message.
	DefaultMaxMessageSize = 64 << 20
	// DefaultMaxBufferedBytes is the default limit on the bytes buffered by all Store calls
	// together.
	DefaultMaxBufferedBytes = 256 << 20
	// DefaultMaxUploadTime is the default limit on receiving one message (64 MiB at 1 Mbit/s).
	DefaultMaxUploadTime = 10 * time.Minute
	// DefaultMaxIdleTime is the default limit on a Store stream's silence: no request for that
	// long and the upload is cut.
	DefaultMaxIdleTime = 30 * time.Second
	// maxRecvMsgSize bounds one gRPC request: a full chunk plus the framing and header fields.
	maxRecvMsgSize = MaxChunkSize + 64<<10
)

// Config configures a [Service] or a [Server].
type Config struct {
	// Archive stores messages. Required.
	Archive Archive
	// Reader serves records, checkpoints and proofs; nil makes those RPCs answer Unimplemented.
	Reader Reader
	// Authorizer authenticates and authorises every RPC; required by [New]. Its policy must
	// cover the archive's methods (see [DefaultPolicy]): a method it does not list is refused.
	Authorizer *auth.Authorizer
	// TLS is the server's TLS configuration (see auth.ServerTLS); nil serves plaintext, which is
	// only fit for loopback and in-process use.
	TLS *tls.Config
	// MaxMessageSize limits one stored message (default [DefaultMaxMessageSize]).
	MaxMessageSize int64
	// MaxBufferedBytes limits the bytes all concurrent Store calls buffer together (default
	// [DefaultMaxBufferedBytes], at least MaxMessageSize). A call reserves its buffer as its
	// bytes arrive (growing it geometrically, never beyond its declared expected_size or
	// MaxMessageSize), first come first served, and waits (within its deadline) while the budget
	// is spent; when the calls holding it all wait for more, the newest fails with Unavailable
	// (clients retry) and gives its share back.
	MaxBufferedBytes int64
	// MaxUploadTime bounds the reception of one message, from its header to its last chunk
	// (default [DefaultMaxUploadTime]); past it Store fails with DeadlineExceeded.
	MaxUploadTime time.Duration
	// MaxIdleTime cuts a Store stream that sends no request for that long, header included
	// (default [DefaultMaxIdleTime]): Store fails with DeadlineExceeded and its buffer is freed.
	MaxIdleTime time.Duration
}

// DefaultPolicy returns the role table of the archive's methods: Store for "ingest",
// RecordAccess for "recorder" (the query service), the reads for "reader" and "auditor",
// everything for "admin". GetRecord is open to "ingest" as well: it confirms with it that the
// archive holds a message (blob included) before an after_archive policy removes that message
// from a mailbox; Store already answers it the same record.
func DefaultPolicy() auth.Policy {
	readers := []auth.Role{auth.RoleReader, auth.RoleAuditor, auth.RoleAdmin}
	return auth.Policy{
		archivev1.ArchiveService_Store_FullMethodName:               {auth.RoleIngest, auth.RoleAdmin},
		archivev1.ArchiveService_GetRecord_FullMethodName:           append([]auth.Role{auth.RoleIngest}, readers...),
		archivev1.ArchiveService_GetCheckpoint_FullMethodName:       readers,
		archivev1.ArchiveService_GetInclusionProof_FullMethodName:   readers,
		archivev1.ArchiveService_GetConsistencyProof_FullMethodName: readers,
		archivev1.ArchiveService_RecordAccess_FullMethodName:        {auth.RoleRecorder, auth.RoleAdmin},
	}
}

// Service implements archivev1.ArchiveServiceServer. Register it on a grpc.Server whose
// interceptors enforce an auth.Authorizer (as [New] does), for instance to serve it next to
// other services in one process.
type Service struct {
	archivev1.UnimplementedArchiveServiceServer
	archive       Archive
	reader        Reader
	maxSize       int64
	maxUploadTime time.Duration
	maxIdleTime   time.Duration
	budget        *budget
}

// NewService returns the service for cfg (cfg.Authorizer and cfg.TLS are not used).
func NewService(cfg Config) (*Service, error) {
	if cfg.Archive == nil {
		return nil, errors.New("grpcserver: Config.Archive is required")
	}
	if cfg.MaxMessageSize < 0 || cfg.MaxBufferedBytes < 0 || cfg.MaxUploadTime < 0 || cfg.MaxIdleTime < 0 {
		return nil, errors.New("grpcserver: negative limit")
	}
	s := &Service{archive: cfg.Archive, reader: cfg.Reader, maxSize: cfg.MaxMessageSize, maxUploadTime: cfg.MaxUploadTime,
		maxIdleTime: cfg.MaxIdleTime}
	if s.maxUploadTime == 0 {
		s.maxUploadTime = DefaultMaxUploadTime
	}
	if s.maxIdleTime == 0 {
		s.maxIdleTime = DefaultMaxIdleTime
	}
	if s.maxSize == 0 {
		s.maxSize = DefaultMaxMessageSize
	}
	buffered := cfg.MaxBufferedBytes
	if buffered == 0 {
		buffered = DefaultMaxBufferedBytes
	}
	s.budget = newBudget(max(buffered, s.maxSize))
	return s, nil
}

// Register registers the service on r.
func (s *Service) Register(r grpc.ServiceRegistrar) {
	archivev1.RegisterArchiveServiceServer(r, s)
}

// streamWorkers is the number of goroutines kept to run streams: about as many as Store calls
// in flight from a busy ingest.
const streamWorkers = 64

// HTTP/2 flow-control windows of a stream and of a connection.
const (
	streamWindow = 1 << 20
	connWindow   = 4 << 20
)

// ServerOptions returns the options the service needs on its grpc.Server: a receive limit that
// fits one chunk, and keepalive settings that drop dead peers (freeing their buffers).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		// Reused handler goroutines keep their grown stacks: a new goroutine per stream grows
		// (copies) its stack on every call, which cost about a tenth of the service's CPU.
		// Streams beyond the workers get a goroutine of their own.
		grpc.NumStreamWorkers(streamWorkers),
		// Fixed flow-control windows: with the default dynamic ones every call also costs a
		// bandwidth-estimation ping and its ack.
		// The windows also bound what a client can make the transport buffer before the
		// handler reads it: a stream window per stream, a connection window per connection.
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 30 * time.Second, PermitWithoutStream: true}),
	}
}

// Server is a grpc.Server serving the archive service behind authentication.
type Server struct {
	grpc    *grpc.Server
	service *Service
}

// New returns a server with the archive service registered, the Authorizer's interceptors
// installed and, when cfg.TLS is set, TLS. Call Serve to accept connections.
func New(cfg Config) (*Server, error) {
	if cfg.Authorizer == nil {
		return nil, errors.New("grpcserver: Config.Authorizer is required")
	}
	svc, err := NewService(cfg)
	if err != nil {
		return nil, err
	}
	opts := append(ServerOptions(), cfg.Authorizer.ServerOptions()...)
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	g := grpc.NewServer(opts...)
	svc.Register(g)
	return &Server{grpc: g, service: svc}, nil
}

// GRPC returns the underlying grpc.Server, to register more services on it (their methods must
// be in the Authorizer's policy).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Serve accepts connections on lis until Stop or GracefulStop.
func (s *Server) Serve(lis net.Listener) error {
	if err := s.grpc.Serve(lis); err != nil {
		return fmt.Errorf("grpcserver: %w", err)
	}
	return nil
}

// GracefulStop stops accepting connections and waits for running RPCs to finish.
func (s *Server) GracefulStop() { s.grpc.GracefulStop() }

// Stop closes all connections and cancels running RPCs.
func (s *Server) Stop() { s.grpc.Stop() }
