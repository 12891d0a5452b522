package query_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive"
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

// A bundle of 1,000 messages and a bundle of one 50 MB message, exported from the real archive
// and verified; the export of the large one streams it (it allocates a small fraction of it).
func TestExportLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("archives 1,000 messages and one of 50 MB")
	}
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	g := gen(t)
	sender := "grande-invio@" + pectest.ProviderA.Domain
	for i := range 200 { // 200 notices of 5 messages: original, acceptance, envelope, delivery, its postacert
		o, err := provA.Original(&pectest.Original{From: sender, To: []string{fmt.Sprintf("socio-%d@%s", i, pectest.ProviderB.Domain)},
			Subject: fmt.Sprintf("Avviso %d", i), MessageID: fmt.Sprintf("avviso-grande-%d@pec.ordine.example.it", i),
			Date: pectest.DefaultTime.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range [][]byte{o.Raw, g(provA.Acceptance(pectest.Params{Original: o})).Bytes,
			g(provA.Envelope(pectest.Params{Original: o})).Bytes, g(provB.Delivery(pectest.Params{Original: o, ReceiptType: pec.ReceiptCompleta})).Bytes} {
			if _, err := f.a.Store(ctx, raw, archive.Source{Mailbox: "bench", Folder: "INBOX"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One signed transport envelope of about 50 MB.
	part := 12 << 20
	o, err := provA.Original(&pectest.Original{From: "grande@" + pectest.ProviderA.Domain, To: []string{"destinatario@" + pectest.ProviderB.Domain},
		MessageID: "cinquanta-mega@pec.ordine.example.it", Body: strings.Repeat("Allegato di prova. ", 360_000),
		Attachments: []pectest.Attachment{{Name: "a.pdf", Data: provA.FileData(part, "a")}, {Name: "b.pdf", Data: provA.FileData(part, "b")}}})
	if err != nil {
		t.Fatal(err)
	}
	env := g(provA.Envelope(pectest.Params{Original: o}))
	if len(env.Bytes) < 48<<20 {
		t.Fatalf("the envelope has %d bytes", len(env.Bytes))
	}
	if _, err := f.a.Store(ctx, env.Bytes, archive.Source{Mailbox: "bench", Folder: "INBOX"}); err != nil {
		t.Fatal(err)
	}
	f.publish(t)
	who := query.Caller{Name: "test", Auth: "local"}
	method := querypb.EvidenceService_ExportEvidenceBundle_FullMethodName

	var buf bytes.Buffer
	if err := f.svc.Export(ctx, who, method, query.ExportRequest{Selectors: []query.Selector{{Sender: sender}}}, &buf); err != nil {
		t.Fatal(err)
	}
	res := verifyBundle(t, buf.Bytes(), f.vkey)
	if !res.OK || res.Messages != 1000 || res.Deliveries != 200 {
		t.Fatalf("1,000 messages: ok %v, %d messages, %d deliveries\n%s", res.OK, res.Messages, res.Deliveries, evidencetest.Failures(res))
	}

	file := filepath.Join(t.TempDir(), "big.zip")
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err = f.svc.Export(ctx, who, method, query.ExportRequest{Selectors: []query.Selector{{MsgID: o.MessageID}}}, out)
	runtime.ReadMemStats(&after)
	out.Close()
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("exporting a %d-byte message allocated %d bytes", len(env.Bytes), alloc)
	if alloc > uint64(len(env.Bytes))/4 {
		t.Errorf("exporting a %d-byte message allocated %d bytes: not streamed", len(env.Bytes), alloc)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if res := verifyBundle(t, data, f.vkey); !res.OK || res.Messages != 1 {
		t.Fatalf("50 MB: %d messages\n%s", res.Messages, evidencetest.Failures(res))
	}
}
