package query_test

import (
	"context"
	"net"
	"testing"

	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
	"github.com/pecarchive/pecarchive/services/query"
)

// The deployed shape: the query service records through the archive's RecordAccess RPC with
// credentials of the recorder role, which the archive records as the recorder.
func TestRemoteRecorder(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	creds, err := auth.ParseCredentials([]byte("token " + auth.HashToken("rec-token") + " query-service recorder\n" +
		"token " + auth.HashToken("reader-token") + " someone reader\n"))
	if err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer(creds, grpcserver.DefaultPolicy(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := grpcserver.New(grpcserver.Config{Archive: f.a, Authorizer: authz})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	recorder := func(token string) query.RemoteRecorder {
		cc, client, err := archiveclient.Dial(lis.Addr().String(), archiveclient.DialOptions{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return query.RemoteRecorder{Client: client}
	}
	c := newConversation(t, "Remoto", msgName(30))
	f.storeAll(t, c)

	svc, err := query.New(ctx, query.Config{Reader: f.rd, Recorder: recorder("rec-token")})
	if err != nil {
		t.Fatal(err)
	}
	who := query.Caller{Name: "segreteria", Auth: "token"}
	ans, err := svc.Prove(ctx, who, "/pecarchive.query.v1.EvidenceService/ProveDelivery", query.ProveRequest{Selector: query.Selector{MsgID: c.orig.MessageID}})
	if err != nil || len(ans.Messages) != 1 {
		t.Fatalf("prove: %v, %v", ans, err)
	}
	acc := f.accesses(t)
	if len(acc) != 1 || acc[0].Principal != "segreteria" || acc[0].Recorder != "query-service" {
		t.Fatalf("access rows %+v", acc)
	}
	// Credentials without the recorder role: the archive refuses the record, so the service
	// refuses the read.
	svc, err = query.New(ctx, query.Config{Reader: f.rd, Recorder: recorder("reader-token")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Prove(ctx, who, "/m", query.ProveRequest{Selector: query.Selector{MsgID: c.orig.MessageID}}); err == nil {
		t.Error("prove with a recorder the archive refuses: answered")
	}
	if n := len(f.accesses(t)); n != 1 {
		t.Errorf("%d access rows", n)
	}
}
