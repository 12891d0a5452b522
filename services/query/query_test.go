package query_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pecarchive/pecarchive/evidence/evidencetest"
	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/pgerr"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/query"
	"github.com/pecarchive/pecarchive/tlog"
)

func byMsgID(id string) *querypb.ProveDeliveryRequest {
	return &querypb.ProveDeliveryRequest{Selector: &querypb.ProveDeliveryRequest_Msgid{Msgid: id}}
}

func recipientsOf(m *querypb.MessageProof) map[string]*querypb.RecipientProof {
	out := map[string]*querypb.RecipientProof{}
	for _, r := range m.GetRecipients() {
		out[r.GetAddress()] = r
	}
	return out
}

// The done-when test: through the real archive and the query service over gRPC, a good delivery
// receipt makes its recipient DELIVERED, and forged, tampered, rogue-signed and
// expired-at-signing ones each fail to (the explanation saying why); every receipt comes with an
// inclusion proof that checks against the signed checkpoint of the answer; the read is recorded
// in the log; the audit passes.
func TestProveDelivery(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := ctxT(t)
	c := newConversation(t, "Convocazione assemblea", msgName(1))
	recs := f.storeAll(t, c)
	cp := f.publish(t)

	resp, err := f.client(t, auth.RoleBackoffice).ProveDelivery(ctx, byMsgID("<"+c.orig.MessageID+">"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetMessages()) != 1 || resp.GetNextPageToken() != "" {
		t.Fatalf("%d messages, next %q", len(resp.GetMessages()), resp.GetNextPageToken())
	}
	m := resp.GetMessages()[0]
	origSum := sha256.Sum256(c.orig.Raw)
	if m.GetMsgid() != c.orig.MessageID || m.GetPecId() != c.orig.ID || m.GetSubject() != "Convocazione assemblea" ||
		!bytes.Equal(m.GetSha256(), origSum[:]) || m.GetSender() == "" || m.GetSentAt() == nil {
		t.Errorf("message: %v", m)
	}
	rs := recipientsOf(m)
	want := map[string]struct {
		v    querypb.Verdict
		word string
	}{
		rDelivered: {querypb.Verdict_VERDICT_DELIVERED, "Delivered"},
		rForged:    {querypb.Verdict_VERDICT_ACCEPTED_ONLY, "bad-signature"},
		rTampered:  {querypb.Verdict_VERDICT_ACCEPTED_ONLY, "digest-mismatch"},
		rRogue:     {querypb.Verdict_VERDICT_ACCEPTED_ONLY, "untrusted"},
		rExpired:   {querypb.Verdict_VERDICT_ACCEPTED_ONLY, "expired"},
		rNotDeliv:  {querypb.Verdict_VERDICT_NOT_DELIVERED, "no-dest"},
		rPending:   {querypb.Verdict_VERDICT_ACCEPTED_ONLY, "no valid delivery"},
	}
	for addr, w := range want {
		r := rs[addr]
		if r == nil {
			t.Errorf("%s: no answer", addr)
			continue
		}
		if r.GetVerdict() != w.v || !strings.Contains(r.GetExplanationEn(), w.word) || r.GetExplanationIt() == "" {
			t.Errorf("%s: %s %q, want %s saying %q", addr, r.GetVerdict(), r.GetExplanationEn(), w.v, w.word)
		}
		t.Logf("%s: %s: %s", addr, r.GetVerdict(), r.GetExplanationEn())
	}
	delSum := recs["delivered"].SHA256
	if d := rs[rDelivered]; !bytes.Equal(d.GetDecidingSha256(), delSum[:]) || d.GetAt() == "" {
		t.Errorf("deciding receipt of the delivered recipient: %x at %q", d.GetDecidingSha256(), d.GetAt())
	}
	// The checkpoint is the archive's, signed; every receipt's proof checks against it.
	got := resp.GetCheckpoint()
	if v, err := tlog.VerifyCheckpoint(got.GetSigned(), f.vkey); err != nil || v.Size != cp.Size || got.GetSize() != cp.Size ||
		!bytes.Equal(got.GetRoot(), cp.Hash) || got.GetOrigin() != origin {
		t.Fatalf("checkpoint %v: %v", got, err)
	}
	proved := 0
	for _, r := range m.GetRecipients() {
		for _, rc := range r.GetReceipts() {
			data, err := f.log.LeafData(ctx, rc.GetLeafIndex())
			if err != nil {
				t.Fatal(err)
			}
			if leaf, _ := tlog.ParseLeaf(data); !bytes.Equal(leaf.SHA256[:], rc.GetSha256()) {
				t.Errorf("leaf %d is not the receipt's", rc.GetLeafIndex())
			}
			if err := tlog.VerifyInclusion(tlog.LeafHash(data), rc.GetLeafIndex(), cp.Size, rc.GetInclusionProof(), cp.Hash); err != nil {
				t.Errorf("receipt %x: %v", rc.GetSha256()[:4], err)
			}
			proved++
		}
	}
	if proved < 7 {
		t.Errorf("%d receipts proved", proved)
	}
	for _, rc := range rs[rForged].GetReceipts() {
		if rc.GetKind() == string(pec.KindAvvenutaConsegna) && (rc.GetValid() || rc.GetTrusted() || len(rc.GetReasons()) == 0) {
			t.Errorf("the forged receipt is shown as %v", rc)
		}
	}

	// The same by PEC id, and the read recorded: who, what, which messages.
	byPEC, err := f.client(t, auth.RoleService).ProveDelivery(ctx, &querypb.ProveDeliveryRequest{Selector: &querypb.ProveDeliveryRequest_PecId{PecId: c.orig.ID}})
	if err != nil || len(byPEC.GetMessages()) != 1 || len(byPEC.GetMessages()[0].GetRecipients()) != len(want) {
		t.Fatalf("by PEC id: %v, %v", byPEC, err)
	}
	acc := f.accesses(t)
	if len(acc) != 2 {
		t.Fatalf("%d access rows, want 2", len(acc))
	}
	if acc[0].Principal != "as-backoffice" || acc[0].Auth != "token" || acc[0].Method != querypb.EvidenceService_ProveDelivery_FullMethodName ||
		acc[0].Selector != "msgid="+c.orig.MessageID || acc[0].Recorder != "" || !slices.Contains(acc[0].Returned, origSum) ||
		!slices.Contains(acc[0].Returned, recs["forged"].SHA256) || len(acc[0].Returned) != 8 {
		t.Errorf("access row %+v", acc[0])
	}
	if acc[1].Principal != "as-service" || acc[1].Selector != "pec-id="+c.orig.ID || acc[1].LeafIndex <= cp.Size-1 {
		t.Errorf("access row %+v", acc[1])
	}

	// A message whose only receipt for a recipient is forged: UNVERIFIED, saying why.
	o2, err := provA.Original(&pectest.Original{To: []string{"solo@pec.esempio.it"}, Subject: "Diffida", MessageID: msgName(2)})
	if err != nil {
		t.Fatal(err)
	}
	forger, _ := provB.With(func(op *pectest.Options) { op.Defect = pectest.DefectForged })
	f.store(t, gen(t)(forger.Delivery(pectest.Params{Original: o2, Recipient: "solo@pec.esempio.it"})))
	resp, err = f.client(t, auth.RoleAuditor).ProveDelivery(ctx, byMsgID(o2.MessageID))
	if err != nil {
		t.Fatal(err)
	}
	r := recipientsOf(resp.GetMessages()[0])["solo@pec.esempio.it"]
	if r.GetVerdict() != querypb.Verdict_VERDICT_UNVERIFIED || !strings.Contains(r.GetExplanationEn(), "bad-signature") ||
		len(r.GetReceipts()) != 1 || len(r.GetReceipts()[0].GetInclusionProof()) != 0 {
		t.Errorf("forged receipt alone: %v", r)
	}
	// Nothing matched: no messages, the read recorded all the same.
	none, err := f.client(t, auth.RoleService).ProveDelivery(ctx, byMsgID("never-sent@x"))
	if err != nil || len(none.GetMessages()) != 0 {
		t.Errorf("unknown msgid: %v, %v", none, err)
	}
	if n := len(f.accesses(t)); n != 4 {
		t.Errorf("%d access rows, want 4", n)
	}

	rep, err := audit.Run(ctx, audit.Config{Pool: f.pool, Blobs: f.fs, Log: f.log, LogKey: f.vkey})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.AccessRows != 4 || rep.AccessLeaves != 4 {
		t.Errorf("audit: %+v %v", rep, rep.Findings)
	}
}

// Several messages of one sender: newest first, a page at a time, each page recorded.
func TestProveByParties(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := ctxT(t)
	var sender string
	base := time.Date(2026, 5, 18, 9, 0, 0, 0, time.UTC)
	for i := range 3 {
		o, err := provA.Original(&pectest.Original{To: []string{"socio@pec.esempio.it"}, Subject: "Avviso", MessageID: msgName(10 + i),
			Date: base.Add(time.Duration(i) * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		sender = o.From
		f.store(t, gen(t)(provA.Acceptance(pectest.Params{Original: o})))
		f.store(t, gen(t)(provB.Delivery(pectest.Params{Original: o, Recipient: "socio@pec.esempio.it"})))
	}
	f.publish(t)
	c := f.client(t, auth.RoleBackoffice)
	var order []string
	token := ""
	for range 5 {
		resp, err := c.ProveDelivery(ctx, &querypb.ProveDeliveryRequest{PageSize: 1, PageToken: token,
			Selector: &querypb.ProveDeliveryRequest_Parties{Parties: &querypb.Parties{Sender: sender, Recipient: "SOCIO@pec.esempio.it"}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range resp.GetMessages() {
			order = append(order, m.GetMsgid())
			if v := m.GetRecipients()[0].GetVerdict(); v != querypb.Verdict_VERDICT_DELIVERED {
				t.Errorf("%s: %s", m.GetMsgid(), v)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if want := []string{msgName(12), msgName(11), msgName(10)}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	// A time range.
	resp, err := c.ProveDelivery(ctx, &querypb.ProveDeliveryRequest{Selector: &querypb.ProveDeliveryRequest_Parties{Parties: &querypb.Parties{
		Sender: sender, Since: timestamppb.New(base.Add(30 * time.Minute)), Until: timestamppb.New(base.Add(90 * time.Minute))}}})
	if err != nil || len(resp.GetMessages()) != 1 || resp.GetMessages()[0].GetMsgid() != msgName(11) {
		t.Errorf("range: %v, %v", resp, err)
	}
	for name, req := range map[string]*querypb.ProveDeliveryRequest{
		"no selector":          {},
		"empty parties":        {Selector: &querypb.ProveDeliveryRequest_Parties{Parties: &querypb.Parties{}}},
		"page too large":       {Selector: &querypb.ProveDeliveryRequest_Msgid{Msgid: "x@y"}, PageSize: 1000},
		"token of nothing":     {Selector: &querypb.ProveDeliveryRequest_Parties{Parties: &querypb.Parties{Sender: sender}}, PageToken: "garbage!"},
		"token of another":     {Selector: &querypb.ProveDeliveryRequest_Parties{Parties: &querypb.Parties{Sender: "other@x"}}, PageSize: 1, PageToken: firstToken(t, c, sender)},
		"since after until":    {Selector: &querypb.ProveDeliveryRequest_Parties{Parties: &querypb.Parties{Sender: sender, Since: timestamppb.New(base), Until: timestamppb.New(base.Add(-time.Hour))}}},
		"msgid over 998 bytes": {Selector: &querypb.ProveDeliveryRequest_Msgid{Msgid: strings.Repeat("x", 1000)}},
	} {
		if _, err := c.ProveDelivery(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

func firstToken(t *testing.T, c querypb.EvidenceServiceClient, sender string) string {
	t.Helper()
	resp, err := c.ProveDelivery(ctxT(t), &querypb.ProveDeliveryRequest{PageSize: 1,
		Selector: &querypb.ProveDeliveryRequest_Parties{Parties: &querypb.Parties{Sender: sender}}})
	if err != nil || resp.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", resp, err)
	}
	return resp.GetNextPageToken()
}

// readMessage reads a GetMessage stream whole.
func readMessage(c querypb.EvidenceServiceClient, t *testing.T, sum []byte) ([]byte, int64, error) {
	stream, err := c.GetMessage(ctxT(t), &querypb.GetMessageRequest{Sha256: sum})
	if err != nil {
		return nil, 0, err
	}
	var b []byte
	var size int64
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return b, size, nil
		}
		if err != nil {
			return b, size, err
		}
		if resp.GetSize() != 0 {
			size = resp.GetSize()
		}
		b = append(b, resp.GetChunk()...)
	}
}

// GetMessage serves the exact bytes, the postacert.eml by its own SHA-256, and records each read.
func TestGetMessage(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := newConversation(t, "Bytes", msgName(3))
	recs := f.storeAll(t, c)
	cl := f.client(t, auth.RoleService)
	del := recs["delivered"]
	b, size, err := readMessage(cl, t, del.SHA256[:])
	if err != nil || !bytes.Equal(b, c.gens["delivered"].Bytes) || size != int64(len(b)) {
		t.Fatalf("receipt: %d bytes (size %d), %v", len(b), size, err)
	}
	if del.Postacert == nil {
		t.Fatal("no postacert.eml catalogued")
	}
	b, _, err = readMessage(cl, t, del.Postacert.SHA256[:])
	if err != nil || sha256.Sum256(b) != del.Postacert.SHA256 {
		t.Errorf("postacert.eml: %v", err)
	}
	acc := f.accesses(t)
	if len(acc) != 2 || acc[1].Selector != "sha256="+hex.EncodeToString(del.Postacert.SHA256[:]) ||
		acc[1].Method != querypb.EvidenceService_GetMessage_FullMethodName || !slices.Equal(acc[1].Returned, [][32]byte{del.Postacert.SHA256}) {
		t.Errorf("access rows %+v", acc)
	}
	unknown := sha256.Sum256([]byte("never"))
	if _, _, err := readMessage(cl, t, unknown[:]); status.Code(err) != codes.NotFound {
		t.Errorf("unknown: %v, want NotFound", err)
	}
	if _, _, err := readMessage(cl, t, unknown[:5]); status.Code(err) != codes.InvalidArgument {
		t.Errorf("short sha256: %v, want InvalidArgument", err)
	}
	if n := len(f.accesses(t)); n != 2 {
		t.Errorf("refused reads recorded: %d rows", n)
	}
	// A blob rewritten on disk: the stream ends with DataLoss.
	path := f.fs.Path(del.SHA256)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if err := os.WriteFile(path, bytes.Replace(raw, []byte("Bytes"), []byte("Bytez"), -1), 0o444); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readMessage(cl, t, del.SHA256[:]); status.Code(err) != codes.DataLoss {
		t.Errorf("rewritten blob: %v, want DataLoss", err)
	}
}

// SearchMessages pages through a stable order; tokens only continue their own search.
func TestSearchMessages(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := newConversation(t, "Ricerca", msgName(4))
	f.storeAll(t, c)
	cl := f.client(t, auth.RoleBackoffice)
	ctx := ctxT(t)
	filter := &querypb.MessageFilter{Sender: c.orig.From, Kinds: []string{"avvenuta-consegna", "accettazione"}}
	all, err := cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: filter})
	if err != nil || len(all.GetMessages()) != 6 || all.GetNextPageToken() != "" {
		t.Fatalf("search: %d, %v", len(all.GetMessages()), err)
	}
	var paged [][]byte
	token := ""
	for range 10 {
		page, err := cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: filter, PageSize: 4, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.GetMessages() {
			paged = append(paged, m.GetSha256())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(paged) != 6 {
		t.Fatalf("paged %d", len(paged))
	}
	for i, m := range all.GetMessages() {
		if !bytes.Equal(paged[i], m.GetSha256()) {
			t.Errorf("page order differs at %d", i)
		}
	}
	trusted, err := cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: &querypb.MessageFilter{Sender: c.orig.From,
		Kinds: []string{"avvenuta-consegna"}, Signature: querypb.SignatureFilter_SIGNATURE_FILTER_NOT_TRUSTED}})
	if err != nil || len(trusted.GetMessages()) != 4 {
		t.Errorf("untrusted delivery receipts: %d, %v", len(trusted.GetMessages()), err)
	}
	words, err := cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: &querypb.MessageFilter{Recipient: rDelivered, SubjectWords: []string{"RICERCA"}}})
	if err != nil || len(words.GetMessages()) == 0 {
		t.Errorf("subject words: %v, %v", words, err)
	}
	// Subject words are matched as text, never as a pattern or SQL: wildcards and quotes find
	// nothing here, and a month without a party is a range they may search.
	for _, w := range []string{"%", "_", "Ric%", "' OR '1'='1", `\`, ".*"} {
		got, err := cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: &querypb.MessageFilter{Sender: c.orig.From, SubjectWords: []string{w}}})
		if err != nil || len(got.GetMessages()) != 0 {
			t.Errorf("subject word %q: %d messages, %v", w, len(got.GetMessages()), err)
		}
	}
	month := &querypb.MessageFilter{SubjectWords: []string{"ricerca"}, Since: timestamppb.New(time.Now().Add(-30 * 24 * time.Hour)),
		Until: timestamppb.New(time.Now().Add(time.Hour))}
	if got, err := cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: month}); err != nil || len(got.GetMessages()) == 0 {
		t.Errorf("subject words over a month: %v, %v", got, err)
	}
	tok := firstSearchToken(t, cl, filter)
	for name, req := range map[string]*querypb.SearchMessagesRequest{
		"token of another search": {Filter: &querypb.MessageFilter{Sender: "x@y"}, PageSize: 4, PageToken: tok},
		"garbage token":           {Filter: filter, PageToken: "%%%"},
		"subject words alone":     {Filter: &querypb.MessageFilter{SubjectWords: []string{"x"}}},
		"subject words over a year": {Filter: &querypb.MessageFilter{SubjectWords: []string{"x"},
			Since: timestamppb.New(time.Now().AddDate(-1, 0, 0)), Until: timestamppb.Now()}},
		"unknown kind":   {Filter: &querypb.MessageFilter{Kinds: []string{"postcard"}}},
		"page too large": {Filter: filter, PageSize: 100000},
		"too many words": {Filter: &querypb.MessageFilter{Sender: "x@y", SubjectWords: strings.Fields("a b c d e f g h i")}},
	} {
		if _, err := cl.SearchMessages(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := f.client(t, auth.RoleService).SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: filter}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("service searching: %v, want PermissionDenied", err)
	}
}

func firstSearchToken(t *testing.T, cl querypb.EvidenceServiceClient, f *querypb.MessageFilter) string {
	t.Helper()
	page, err := cl.SearchMessages(ctxT(t), &querypb.SearchMessagesRequest{Filter: f, PageSize: 4})
	if err != nil || page.GetNextPageToken() == "" {
		t.Fatalf("first page: %v", err)
	}
	return page.GetNextPageToken()
}

// The done-when test of fail closed: when the read cannot be recorded, nothing is answered, and
// once it can, it is.
func TestFailClosed(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := newConversation(t, "Chiuso", msgName(5))
	recs := f.storeAll(t, c)
	f.publish(t)
	cl := f.client(t, auth.RoleAuditor)
	ctx := ctxT(t)
	calls := map[string]func() (any, error){
		"ProveDelivery": func() (any, error) { return cl.ProveDelivery(ctx, byMsgID(c.orig.MessageID)) },
		"SearchMessages": func() (any, error) {
			return cl.SearchMessages(ctx, &querypb.SearchMessagesRequest{Filter: &querypb.MessageFilter{Sender: c.orig.From}})
		},
		"GetMessage": func() (any, error) {
			sum := recs["delivered"].SHA256
			b, _, err := readMessage(cl, t, sum[:])
			if len(b) > 0 {
				return b, err
			}
			return nil, err
		},
	}
	f.rec.off.Store(true)
	for name, call := range calls {
		resp, err := call()
		if status.Code(err) != codes.Unavailable || resp != nil && !isNilProto(resp) {
			t.Errorf("%s with the record refused: %v, %v; want Unavailable and nothing", name, resp, err)
		}
		if strings.Contains(err.Error(), errRecorderDown.Error()) {
			t.Errorf("%s: the error leaks the cause: %v", name, err)
		}
	}
	if n := len(f.accesses(t)); n != 0 {
		t.Fatalf("%d access rows", n)
	}
	// Reads of the log are not recorded, so they still work.
	if _, err := cl.GetCheckpoint(ctx, &querypb.GetCheckpointRequest{}); err != nil {
		t.Errorf("checkpoint: %v", err)
	}
	f.rec.off.Store(false)
	for name, call := range calls {
		if _, err := call(); err != nil {
			t.Errorf("%s with the record accepted: %v", name, err)
		}
	}
	if n := len(f.accesses(t)); n != 3 {
		t.Errorf("%d access rows, want 3", n)
	}
	// The archive closed (a writer going away) refuses too.
	f.a.Close(ctx)
	if _, err := cl.ProveDelivery(ctx, byMsgID(c.orig.MessageID)); status.Code(err) != codes.Unavailable {
		t.Errorf("with the archive closed: %v, want Unavailable", err)
	}
}

func isNilProto(v any) bool {
	switch x := v.(type) {
	case *querypb.ProveDeliveryResponse:
		return x == nil
	case *querypb.SearchMessagesResponse:
		return x == nil
	}
	return false
}

// The service reads as pecarchive_query, which may not write; with its database gone it answers
// Unavailable and says nothing of the database.
func TestReadOnlyAndUnavailable(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := ctxT(t)
	if _, err := f.roPool.Exec(ctx, `INSERT INTO accesses (leaf_index, at, principal, method) VALUES (99, now(), 'x', 'y')`); pgerr.Code(err) != "25006" && pgerr.Code(err) != "42501" {
		t.Errorf("write as the query service: %v, want a refusal", err)
	}
	var role string
	if err := f.roPool.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil || role != "pecarchive_query" {
		t.Errorf("the query service reads as %q (%v)", role, err)
	}
	c := newConversation(t, "Giù", msgName(6))
	f.storeAll(t, c)
	f.roPool.Close()
	_, err := f.client(t, auth.RoleBackoffice).ProveDelivery(ctx, byMsgID(c.orig.MessageID))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("database closed: %v, want Unavailable", err)
	}
	for _, leak := range []string{"pool", "pgx", "SQL", "SELECT", "127.0.0.1", "postgres"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("the error leaks %q: %v", leak, err)
		}
	}
}

// The log's RPCs, for auditors: a checkpoint, and proofs that check with package tlog alone.
func TestLogRPCs(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := ctxT(t)
	c := newConversation(t, "Registro", msgName(7))
	recs := f.storeAll(t, c)
	first := f.publish(t)
	f.store(t, gen(t)(provA.NonDeliveryWarning(pectest.Params{Original: c.orig, Recipient: rPending})))
	cp := f.publish(t)
	cl := f.client(t, auth.RoleAuditor)
	got, err := cl.GetCheckpoint(ctx, &querypb.GetCheckpointRequest{})
	if err != nil || got.GetCheckpoint().GetSize() != cp.Size {
		t.Fatalf("checkpoint: %v, %v", got, err)
	}
	if _, err := tlog.VerifyCheckpoint(got.GetCheckpoint().GetSigned(), f.vkey); err != nil {
		t.Fatal(err)
	}
	leaf := recs["delivered"].LeafIndex
	ip, err := cl.GetInclusionProof(ctx, &querypb.GetInclusionProofRequest{LeafIndex: leaf, TreeSize: cp.Size})
	if err != nil || tlog.VerifyInclusion(tlog.LeafHash(ip.GetLeafData()), leaf, cp.Size, ip.GetHashes(), cp.Hash) != nil {
		t.Errorf("inclusion: %v", err)
	}
	cons, err := cl.GetConsistencyProof(ctx, &querypb.GetConsistencyProofRequest{FromSize: first.Size, ToSize: cp.Size})
	if err != nil || tlog.VerifyConsistency(first.Size, cp.Size, cons.GetHashes(), first.Hash, cp.Hash) != nil {
		t.Errorf("consistency: %v", err)
	}
	for name, call := range map[string]func() error{
		"index at size": func() error {
			_, err := cl.GetInclusionProof(ctx, &querypb.GetInclusionProofRequest{LeafIndex: cp.Size, TreeSize: cp.Size})
			return err
		},
		"beyond the log": func() error {
			_, err := cl.GetInclusionProof(ctx, &querypb.GetInclusionProofRequest{LeafIndex: 0, TreeSize: cp.Size + 10})
			return err
		},
		"from over to": func() error {
			_, err := cl.GetConsistencyProof(ctx, &querypb.GetConsistencyProofRequest{FromSize: 5, ToSize: 4})
			return err
		},
	} {
		want := codes.InvalidArgument
		if name == "beyond the log" {
			want = codes.OutOfRange
		}
		if err := call(); status.Code(err) != want {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	if n := len(f.accesses(t)); n != 0 {
		t.Errorf("reads of the log recorded: %d", n)
	}
}

// One Message-ID sent twice (sent again, or reused by someone else): each sending is answered on
// its own, by its own receipts, newest first; a receipt of one never proves the other.
func TestTwoSendings(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := ctxT(t)
	const rcpt = "socio@pec.esempio.it"
	o, err := provA.Original(&pectest.Original{To: []string{rcpt}, Subject: "Avviso ripetuto", MessageID: msgName(30)})
	if err != nil {
		t.Fatal(err)
	}
	later := o.Date.Add(time.Hour)
	second := "opec-seconda.1@" + provA.Info.Domain
	f.store(t, gen(t)(provA.Acceptance(pectest.Params{Original: o})))
	f.store(t, gen(t)(provB.NonDelivery(pectest.Params{Original: o, Recipient: rcpt})))
	f.store(t, gen(t)(provA.Acceptance(pectest.Params{Original: o, ID: second, At: later})))
	f.store(t, gen(t)(provB.Delivery(pectest.Params{Original: o, ID: second, Recipient: rcpt, At: later.Add(time.Minute)})))
	f.publish(t)
	cl := f.client(t, auth.RoleBackoffice)
	resp, err := cl.ProveDelivery(ctx, byMsgID(o.MessageID))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range resp.GetMessages() {
		r := recipientsOf(m)[rcpt]
		got = append(got, m.GetPecId()+" "+query.VerdictName(r.GetVerdict()))
		if len(r.GetReceipts()) != 2 { // its acceptance and its delivery or non-delivery
			t.Errorf("%s: %d receipts, want its own two", m.GetPecId(), len(r.GetReceipts()))
		}
	}
	if want := []string{second + " DELIVERED", o.ID + " NOT_DELIVERED"}; !slices.Equal(got, want) {
		t.Errorf("by msgid: %v, want %v", got, want)
	}
	resp, err = cl.ProveDelivery(ctx, &querypb.ProveDeliveryRequest{Selector: &querypb.ProveDeliveryRequest_PecId{PecId: o.ID}})
	if err != nil || len(resp.GetMessages()) != 1 || resp.GetMessages()[0].GetPecId() != o.ID ||
		recipientsOf(resp.GetMessages()[0])[rcpt].GetVerdict() != querypb.Verdict_VERDICT_NOT_DELIVERED {
		t.Errorf("by the first PEC id: %v, %v", resp, err)
	}
	// Returned: the four receipts and the copy of the original inside the delivery receipt, then
	// only the first sending's two and that copy.
	if acc := f.accesses(t); len(acc) != 2 || len(acc[0].Returned) != 5 || len(acc[1].Returned) != 3 {
		t.Errorf("access rows %+v", acc)
	}
	// An evidence bundle of the Message-ID holds a claim per sending, and verifies: the offline
	// verifier derives the two sendings again from the same rows.
	data, _, err := exportBundle(ctx, cl, &querypb.ExportEvidenceBundleRequest{Selectors: []*querypb.Selector{selMsgID(o.MessageID)}})
	if err != nil {
		t.Fatal(err)
	}
	res := verifyBundle(t, data, f.vkey)
	if !res.OK || len(res.Manifest.Deliveries) != 2 || res.Manifest.Deliveries[0].PECID != second {
		t.Fatalf("bundle: ok %v, %d deliveries\n%s", res.OK, len(res.Manifest.Deliveries), evidencetest.Failures(res))
	}
}
