package query_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/query"
)

func selMsgID(id string) *querypb.Selector {
	return &querypb.Selector{Selector: &querypb.Selector_Msgid{Msgid: id}}
}

// exportBundle reads an ExportEvidenceBundle stream to its end: the ZIP, and the SHA-256 of its
// closing response (nil when the stream ended without one).
func exportBundle(ctx context.Context, cl querypb.EvidenceServiceClient, req *querypb.ExportEvidenceBundleRequest) ([]byte, []byte, error) {
	stream, err := cl.ExportEvidenceBundle(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	var sum []byte
	var size int64
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if sum == nil || size != int64(b.Len()) {
				return nil, nil, errors.New("the stream ended without its closing response")
			}
			return b.Bytes(), sum, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if len(resp.GetChunk()) > query.ExportChunk {
			return nil, nil, errors.New("a chunk over ExportChunk")
		}
		b.Write(resp.GetChunk())
		if len(resp.GetSha256()) > 0 {
			sum, size = resp.GetSha256(), resp.GetSize()
		}
	}
}

func verifyBundle(t *testing.T, data []byte, vkey string) *evidence.Result {
	t.Helper()
	return evidence.VerifyReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), &evidence.VerifyOptions{LogKey: vkey})
}

// The done-when path: a real archive, the query service over gRPC, a bundle exported by an
// auditor: it verifies offline; its claims are ProveDelivery's answers (the forged, tampered,
// rogue and expired receipts make nobody DELIVERED); the export is recorded with every SHA-256
// the bundle holds; and every part of it, altered, is detected and named.
func TestExportEvidenceBundle(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := newConversation(t, "Convocazione <assemblea> & \"bilancio\" 2025", msgName(1))
	f.storeAll(t, c)
	f.publish(t)
	signedEarlier, err := f.a.Publish(context.Background()) // cited below
	if err != nil {
		t.Fatal(err)
	}
	c2 := newConversation(t, "Secondo avviso", msgName(2))
	f.storeAll(t, c2)
	f.publish(t)
	before := len(f.accesses(t))

	cl := f.client(t, auth.RoleAuditor)
	data, sum, err := exportBundle(ctxT(t), cl, &querypb.ExportEvidenceBundleRequest{
		Selectors: []*querypb.Selector{selMsgID(c.orig.MessageID), selMsgID(c2.orig.MessageID)},
		Cite:      [][]byte{signedEarlier},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(data); !bytes.Equal(got[:], sum) {
		t.Fatal("the closing SHA-256 is not the bundle's")
	}
	res := verifyBundle(t, data, f.vkey)
	if !res.OK {
		t.Fatalf("the exported bundle does not verify:\n%s", evidencetest.Failures(res))
	}
	m := res.Manifest
	if len(m.Deliveries) != 2 || len(m.Log.Earlier) != 1 || m.ExportedBy != "as-auditor" {
		t.Fatalf("%d deliveries, %d earlier checkpoints, exported by %q", len(m.Deliveries), len(m.Log.Earlier), m.ExportedBy)
	}
	// The claims are ProveDelivery's answers.
	ans, err := cl.ProveDelivery(ctxT(t), byMsgID(c.orig.MessageID))
	if err != nil {
		t.Fatal(err)
	}
	want := recipientsOf(ans.GetMessages()[0])
	for _, r := range m.Deliveries[0].Recipients {
		w := want[r.Address]
		if w == nil || query.VerdictName(w.GetVerdict()) != r.Verdict || w.GetExplanationEn() != r.ExplanationEN || hex.EncodeToString(w.GetDecidingSha256()) != r.Deciding {
			t.Errorf("%s: bundle says %s, prove says %v", r.Address, r.Verdict, w)
		}
		if r.Verdict == evidence.VerdictDelivered && r.Address != rDelivered {
			t.Errorf("%s is DELIVERED", r.Address)
		}
	}
	// The export is recorded, with every SHA-256 of the bundle.
	acc := f.accesses(t)
	if len(acc) != before+2 { // the export, and the prove above
		t.Fatalf("%d accesses recorded, want %d", len(acc), before+2)
	}
	exp := acc[before]
	if exp.Method != querypb.EvidenceService_ExportEvidenceBundle_FullMethodName || exp.Principal != "as-auditor" || len(exp.Returned) != len(m.Messages) {
		t.Fatalf("access %+v for %d messages", exp, len(m.Messages))
	}
	for _, msg := range m.Messages {
		s, _ := hex.DecodeString(msg.SHA256)
		if !slices.Contains(exp.Returned, [32]byte(s)) {
			t.Errorf("message %s is not in the access record", msg.SHA256)
		}
	}
	evidencetest.Tamper(t, data, f.vkey)
}

func TestExportErrors(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := newConversation(t, "Errori", msgName(3))
	f.storeAll(t, c)
	cl := f.client(t, auth.RoleBackoffice)
	export := func(req *querypb.ExportEvidenceBundleRequest) error {
		_, _, err := exportBundle(ctxT(t), cl, req)
		return err
	}
	// Newer than any checkpoint: not yet provable.
	if err := export(&querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{selMsgID(c.orig.MessageID)}}); status.Code(err) != codes.OutOfRange {
		t.Errorf("before a checkpoint: %v", err)
	}
	f.publish(t)
	for name, tc := range map[string]struct {
		req  *querypb.ExportEvidenceBundleRequest
		code codes.Code
	}{
		"no selector":     {&querypb.ExportEvidenceBundleRequest{}, codes.InvalidArgument},
		"empty selector":  {&querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{{}}}, codes.InvalidArgument},
		"nothing matches": {&querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{selMsgID("nobody@example.it")}}, codes.NotFound},
		"a bad citation":  {&querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{selMsgID(c.orig.MessageID)}, Cite: [][]byte{[]byte("nonsense")}}, codes.InvalidArgument},
	} {
		if err := export(tc.req); status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
	// Fail closed: an export that cannot be recorded sends nothing.
	f.rec.off.Store(true)
	stream, err := cl.ExportEvidenceBundle(ctxT(t), &querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{selMsgID(c.orig.MessageID)}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if status.Code(err) != codes.Unavailable || len(resp.GetChunk()) > 0 {
		t.Errorf("unrecorded export: %v, %d bytes", err, len(resp.GetChunk()))
	}
	f.rec.off.Store(false)
}
