package query_test

import (
	"context"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/auth/authtest"
	"github.com/pecarchive/pecarchive/services/query"
)

// allowed is the access the issue asks for, written out independently of DefaultPolicy:
// backoffice proves, searches and gets; service proves and gets; auditor reads everything.
var allowed = map[string][]auth.Role{
	"ProveDelivery":       {auth.RoleBackoffice, auth.RoleService, auth.RoleAuditor},
	"GetMessage":          {auth.RoleBackoffice, auth.RoleService, auth.RoleAuditor},
	"SearchMessages":      {auth.RoleBackoffice, auth.RoleAuditor},
	"GetCheckpoint":       {auth.RoleAuditor},
	"GetInclusionProof":   {auth.RoleAuditor},
	"GetConsistencyProof": {auth.RoleAuditor},
	// Evidence bundles are for auditors, and for the back office to hand to lawyers.
	"ExportEvidenceBundle": {auth.RoleBackoffice, auth.RoleAuditor},
}

// The role matrix: every RPC, called with every role there is, with an unknown token and with
// no credentials, answers exactly as the table says; only the allowed reads are recorded.
func TestRoleMatrix(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := newConversation(t, "Matrice", msgName(20))
	recs := f.storeAll(t, c)
	cp := f.publish(t)
	sum := recs["delivered"].SHA256
	rpcs := map[string]func(ctx context.Context, cl querypb.EvidenceServiceClient) error{
		"ProveDelivery": func(ctx context.Context, cl querypb.EvidenceServiceClient) error {
			_, err := cl.ProveDelivery(ctx, byMsgID(c.orig.MessageID))
			return err
		},
		"GetMessage": func(ctx context.Context, cl querypb.EvidenceServiceClient) error {
			_, _, err := readMessage(cl, t, sum[:])
			return err
		},
		"SearchMessages": func(ctx context.Context, cl querypb.EvidenceServiceClient) error {
			_, err := cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: &querypb.MessageFilter{Sender: c.orig.From}})
			return err
		},
		"GetCheckpoint": func(ctx context.Context, cl querypb.EvidenceServiceClient) error {
			_, err := cl.GetCheckpoint(ctx, &querypb.GetCheckpointRequest{})
			return err
		},
		"GetInclusionProof": func(ctx context.Context, cl querypb.EvidenceServiceClient) error {
			_, err := cl.GetInclusionProof(ctx, &querypb.GetInclusionProofRequest{LeafIndex: 0, TreeSize: cp.Size})
			return err
		},
		"GetConsistencyProof": func(ctx context.Context, cl querypb.EvidenceServiceClient) error {
			_, err := cl.GetConsistencyProof(ctx, &querypb.GetConsistencyProofRequest{FromSize: 1, ToSize: cp.Size})
			return err
		},
		"ExportEvidenceBundle": func(ctx context.Context, cl querypb.EvidenceServiceClient) error {
			_, _, err := exportBundle(ctx, cl, &querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{selMsgID(c.orig.MessageID)}})
			return err
		},
	}
	// Every RPC of the service is in the matrix.
	for _, m := range querypb.EvidenceService_ServiceDesc.Methods {
		if _, ok := rpcs[m.MethodName]; !ok {
			t.Errorf("RPC %s is not in the matrix", m.MethodName)
		}
	}
	for _, s := range querypb.EvidenceService_ServiceDesc.Streams {
		if _, ok := rpcs[s.StreamName]; !ok {
			t.Errorf("RPC %s is not in the matrix", s.StreamName)
		}
	}
	callers := append([]auth.Role{"", "unknown"}, auth.Roles...)
	tokens["unknown"] = "a-token-nobody-has"
	recorded := 0
	for rpc, call := range rpcs {
		for _, role := range callers {
			want := codes.PermissionDenied
			switch {
			case role == "" || role == "unknown":
				want = codes.Unauthenticated
			case slices.Contains(allowed[rpc], role):
				want = codes.OK
				if rpc == "ProveDelivery" || rpc == "GetMessage" || rpc == "SearchMessages" || rpc == "ExportEvidenceBundle" {
					recorded++
				}
			}
			err := call(ctxT(t), f.client(t, role))
			if got := status.Code(err); got != want {
				t.Errorf("%s as %q: %v (%v), want %v", rpc, role, got, err, want)
			}
		}
	}
	if n := len(f.accesses(t)); n != recorded {
		t.Errorf("%d reads recorded, want %d (the allowed reads of evidence, nothing else)", n, recorded)
	}

	// Health checks answer without credentials; reflection needs a role.
	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	h, err := healthpb.NewHealthClient(cc).Check(ctxT(t), &healthpb.HealthCheckRequest{Service: querypb.EvidenceService_ServiceDesc.ServiceName})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v, %v", h, err)
	}
	listServices := func(cc *grpc.ClientConn) ([]string, error) {
		stream, err := reflectionpb.NewServerReflectionClient(cc).ServerReflectionInfo(ctxT(t))
		if err != nil {
			return nil, err
		}
		// A stream the server refuses at once (no credentials) may already be closed when the
		// request is sent: Send then says only io.EOF, and the status comes with Recv.
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			return nil, err
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		return names, nil
	}
	if _, err := listServices(cc); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without credentials: %v, want Unauthenticated", err)
	}
	cc2, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.TokenCredentials(tokens[auth.RoleAuditor], false)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	if names, err := listServices(cc2); err != nil || !slices.Contains(names, querypb.EvidenceService_ServiceDesc.ServiceName) {
		t.Errorf("reflection as auditor: %v, %v", names, err)
	}
}

// Mutual TLS: a certificate identity maps to a role; an unknown certificate is refused; a
// certificate from another CA does not get through the handshake.
func TestMTLS(t *testing.T) {
	f := newFixture(t, fixtureOptions{mtls: true})
	c := newConversation(t, "mTLS", msgName(21))
	f.storeAll(t, c)
	dial := func(ca *authtest.CA, dns string) querypb.EvidenceServiceClient {
		certFile, keyFile := ca.IssueFiles(t, t.TempDir(), "client", authtest.Leaf{CommonName: dns, DNSNames: []string{dns}, Client: true})
		cfg, err := auth.ClientTLS{CAFile: f.caFile, CertFile: certFile, KeyFile: keyFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
		cc, cl, err := query.Dial(f.addr, query.DialOptions{TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cl
	}
	ctx := ctxT(t)
	backoffice := dial(f.ca, "segreteria.ordine.test")
	resp, err := backoffice.ProveDelivery(ctx, byMsgID(c.orig.MessageID))
	if err != nil || len(resp.GetMessages()) != 1 {
		t.Fatalf("prove over mTLS: %v, %v", resp, err)
	}
	if _, err := backoffice.GetCheckpoint(ctx, &querypb.GetCheckpointRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("checkpoint as backoffice: %v, want PermissionDenied", err)
	}
	if _, err := dial(f.ca, "stranger.ordine.test").ProveDelivery(ctx, byMsgID(c.orig.MessageID)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unknown certificate: %v, want Unauthenticated", err)
	}
	if _, err := dial(authtest.NewCA(t, "other CA"), "segreteria.ordine.test").ProveDelivery(ctx, byMsgID(c.orig.MessageID)); status.Code(err) != codes.Unavailable {
		t.Errorf("certificate of another CA: %v, want Unavailable (handshake refused)", err)
	}
	acc := f.accesses(t)
	if len(acc) != 1 || acc[0].Principal != "segreteria-mtls" || acc[0].Auth != "mtls" {
		t.Errorf("access rows %+v", acc)
	}
	// Tokens still work over TLS without a client certificate.
	cfg, err := auth.ClientTLS{CAFile: f.caFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cc, cl, err := query.Dial(f.addr, query.DialOptions{TLS: cfg, Token: tokens[auth.RoleService]})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := cl.ProveDelivery(ctx, byMsgID(c.orig.MessageID)); err != nil {
		t.Errorf("token over TLS: %v", err)
	}
}
