package query

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/verdict"
	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// Handlers implement querypb.EvidenceServiceServer over a [Service]. The caller is the
// principal the auth interceptors put in the context (auth.WithPrincipal, also for in-process
// calls); a call without one is refused.
type Handlers struct {
	querypb.UnimplementedEvidenceServiceServer
	svc *Service
	log *slog.Logger
}

// NewHandlers returns the handlers of svc; log (may be nil) receives the errors hidden from
// callers.
func NewHandlers(svc *Service, log *slog.Logger) *Handlers { return &Handlers{svc: svc, log: log} }

// GetMessageChunk is the size of the chunks GetMessage streams.
const GetMessageChunk = 256 << 10

func caller(ctx context.Context) (Caller, error) {
	p, ok := auth.PrincipalFromContext(ctx)
	if !ok || p.Name == "" {
		return Caller{}, status.Error(codes.Unauthenticated, "query: no authenticated caller")
	}
	return Caller{Name: p.Name, Auth: string(p.Method)}, nil
}

func timeOf(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// ProveDelivery answers for the selected messages.
func (h *Handlers) ProveDelivery(ctx context.Context, req *querypb.ProveDeliveryRequest) (*querypb.ProveDeliveryResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	var sel Selector
	switch s := req.GetSelector().(type) {
	case *querypb.ProveDeliveryRequest_Msgid:
		sel.MsgID = s.Msgid
	case *querypb.ProveDeliveryRequest_PecId:
		sel.PECID = s.PecId
	case *querypb.ProveDeliveryRequest_Parties:
		sel.Sender, sel.Recipient = s.Parties.GetSender(), s.Parties.GetRecipient()
		sel.Since, sel.Until = timeOf(s.Parties.GetSince()), timeOf(s.Parties.GetUntil())
	}
	ans, err := h.svc.Prove(ctx, who, querypb.EvidenceService_ProveDelivery_FullMethodName,
		ProveRequest{Selector: sel, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, h.statusError(ctx, "prove delivery", err)
	}
	return AnswerToProto(ans), nil
}

// AnswerToProto converts an answer of [Service.Prove].
func AnswerToProto(ans *Answer) *querypb.ProveDeliveryResponse {
	out := &querypb.ProveDeliveryResponse{NextPageToken: ans.NextPageToken, Checkpoint: checkpointToProto(ans.Checkpoint)}
	for _, m := range ans.Messages {
		pm := &querypb.MessageProof{Msgid: m.MsgID, PecId: m.PECID, Subject: m.Subject, Sender: m.Sender,
			SentAt: ts(m.SentAt), Sha256: sumOrNil(m.SHA256)}
		for _, r := range m.Recipients {
			pr := &querypb.RecipientProof{Address: r.Address, Verdict: verdictToProto[r.Verdict],
				ExplanationIt: r.ExplanationIT, ExplanationEn: r.ExplanationEN, At: rfc3339(r.At), DecidingSha256: sumOrNil(r.Deciding)}
			for _, rc := range r.Receipts {
				pr.Receipts = append(pr.Receipts, receiptToProto(rc))
			}
			for _, c := range r.Conflicting {
				pr.ConflictingSha256 = append(pr.ConflictingSha256, sumOrNil(c))
			}
			pm.Recipients = append(pm.Recipients, pr)
		}
		out.Messages = append(out.Messages, pm)
	}
	return out
}

var verdictToProto = map[verdict.Verdict]querypb.Verdict{
	verdict.Delivered: querypb.Verdict_VERDICT_DELIVERED, verdict.NotDelivered: querypb.Verdict_VERDICT_NOT_DELIVERED,
	verdict.NotAccepted: querypb.Verdict_VERDICT_NOT_ACCEPTED, verdict.Warned: querypb.Verdict_VERDICT_WARNED,
	verdict.AcceptedOnly: querypb.Verdict_VERDICT_ACCEPTED_ONLY, verdict.Pending: querypb.Verdict_VERDICT_PENDING,
	verdict.Unverified: querypb.Verdict_VERDICT_UNVERIFIED,
}

// VerdictName is the contract's name of a verdict ("DELIVERED", ...): the proto enum value
// without its prefix.
func VerdictName(v querypb.Verdict) string {
	for k, p := range verdictToProto {
		if p == v {
			return string(k)
		}
	}
	return ""
}

func checkpointToProto(c Checkpoint) *querypb.Checkpoint {
	return &querypb.Checkpoint{Origin: c.Origin, Size: c.Size, Root: c.Root, Signed: c.Signed}
}

func receiptToProto(r *Receipt) *querypb.Receipt {
	return &querypb.Receipt{Sha256: sumOrNil(r.SHA256), Kind: string(r.Kind), ReceiptType: string(r.ReceiptType),
		Error: string(r.Errore), ErrorExtended: r.ErroreEsteso, Provider: r.Provider, Time: rfc3339(r.DaticertTime),
		SignedAt: ts(r.Verdict.SignedAt), Valid: r.Verdict.Valid, Trusted: r.Verdict.Trusted, Reasons: r.Verdict.Reasons,
		LeafIndex: r.LeafIndex, InclusionProof: r.Proof}
}

func sumOrNil(s [32]byte) []byte {
	if s == ([32]byte{}) {
		return nil
	}
	return append([]byte(nil), s[:]...)
}

// GetMessage streams the exact bytes of one message.
func (h *Handlers) GetMessage(req *querypb.GetMessageRequest, stream querypb.EvidenceService_GetMessageServer) error {
	ctx := stream.Context()
	who, err := caller(ctx)
	if err != nil {
		return err
	}
	if len(req.GetSha256()) != sha256.Size {
		return status.Errorf(codes.InvalidArgument, "query: sha256 has %d bytes, want %d", len(req.GetSha256()), sha256.Size)
	}
	rc, size, err := h.svc.Open(ctx, who, querypb.EvidenceService_GetMessage_FullMethodName, [32]byte(req.GetSha256()))
	if err != nil {
		return h.statusError(ctx, "get message", err)
	}
	defer rc.Close()
	buf := make([]byte, GetMessageChunk)
	first := true
	for {
		n, err := io.ReadFull(rc, buf)
		if n > 0 || first {
			resp := &querypb.GetMessageResponse{Chunk: buf[:n]}
			if first {
				resp.Size, first = size, false
			}
			if serr := stream.Send(resp); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return h.statusError(ctx, "get message", err)
		}
	}
}

// SearchMessages returns a page of messages.
func (h *Handlers) SearchMessages(ctx context.Context, req *querypb.SearchMessagesRequest) (*querypb.SearchMessagesResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	pf := req.GetFilter()
	f := Filter{Sender: pf.GetSender(), Recipient: pf.GetRecipient(), SubjectWords: pf.GetSubjectWords(),
		Since: timeOf(pf.GetSince()), Until: timeOf(pf.GetUntil())}
	for _, k := range pf.GetKinds() {
		f.Kinds = append(f.Kinds, pec.Kind(k))
	}
	switch pf.GetSignature() {
	case querypb.SignatureFilter_SIGNATURE_FILTER_UNSPECIFIED:
	case querypb.SignatureFilter_SIGNATURE_FILTER_TRUSTED:
		f.Signature = catalog.SignatureTrusted
	case querypb.SignatureFilter_SIGNATURE_FILTER_NOT_TRUSTED:
		f.Signature = catalog.SignatureNotTrusted
	case querypb.SignatureFilter_SIGNATURE_FILTER_NOT_VALID:
		f.Signature = catalog.SignatureNotValid
	default:
		return nil, status.Errorf(codes.InvalidArgument, "query: unknown signature filter %d", pf.GetSignature())
	}
	page, err := h.svc.Search(ctx, who, querypb.EvidenceService_SearchMessages_FullMethodName, f, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, h.statusError(ctx, "search messages", err)
	}
	out := &querypb.SearchMessagesResponse{NextPageToken: page.NextPageToken}
	for i := range page.Messages {
		out.Messages = append(out.Messages, summaryToProto(&page.Messages[i]))
	}
	return out, nil
}

func summaryToProto(m *catalog.Message) *querypb.MessageSummary {
	return &querypb.MessageSummary{Sha256: sumOrNil(m.SHA256), Size: m.Size, Kind: string(m.Kind), ReceiptType: string(m.ReceiptType),
		MessageId: m.MessageID, Msgid: catalog.ConversationKey(m), PecId: m.PECID, Sender: m.Sender, Recipients: m.Recipients,
		Subject: m.Subject, Provider: m.Provider, DaticertTime: rfc3339(m.DaticertTime), ReceivedAt: ts(m.ReceivedAt),
		Valid: m.Verdict.Valid, Trusted: m.Verdict.Trusted, Reasons: m.Verdict.Reasons, LeafIndex: m.LeafIndex}
}

// GetCheckpoint returns the latest signed checkpoint.
func (h *Handlers) GetCheckpoint(ctx context.Context, _ *querypb.GetCheckpointRequest) (*querypb.GetCheckpointResponse, error) {
	cp, err := h.svc.Checkpoint(ctx)
	if err != nil {
		return nil, h.statusError(ctx, "checkpoint", err)
	}
	return &querypb.GetCheckpointResponse{Checkpoint: checkpointToProto(cp)}, nil
}

// GetInclusionProof returns an inclusion proof and the leaf it is for.
func (h *Handlers) GetInclusionProof(ctx context.Context, req *querypb.GetInclusionProofRequest) (*querypb.GetInclusionProofResponse, error) {
	proof, leaf, err := h.svc.InclusionProof(ctx, req.GetLeafIndex(), req.GetTreeSize())
	if err != nil {
		return nil, h.statusError(ctx, "inclusion proof", err)
	}
	return &querypb.GetInclusionProofResponse{LeafIndex: req.GetLeafIndex(), TreeSize: req.GetTreeSize(), Hashes: proof, LeafData: leaf}, nil
}

// GetConsistencyProof returns a consistency proof between two tree sizes.
func (h *Handlers) GetConsistencyProof(ctx context.Context, req *querypb.GetConsistencyProofRequest) (*querypb.GetConsistencyProofResponse, error) {
	proof, err := h.svc.ConsistencyProof(ctx, req.GetFromSize(), req.GetToSize())
	if err != nil {
		return nil, h.statusError(ctx, "consistency proof", err)
	}
	return &querypb.GetConsistencyProofResponse{FromSize: req.GetFromSize(), ToSize: req.GetToSize(), Hashes: proof}, nil
}

// StatusError is the status an error of the [Service] becomes in a handler (for in-process
// callers that want the same words and codes); nothing is logged.
func StatusError(ctx context.Context, op string, err error) error {
	return (&Handlers{}).statusError(ctx, op, err)
}

// statusError is the one place where the service's errors, sorted into kinds where they arose,
// become gRPC status codes. Messages help the caller and say nothing of the storage behind (no
// SQL, no paths, no addresses); what they hide goes to the log.
func (h *Handlers) statusError(ctx context.Context, op string, err error) error {
	var timeout interface{ Timeout() bool }
	code, msg := codes.Internal, "internal error"
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error()) // our own words, about the request
	case errors.Is(err, reader.ErrInvalid):
		code, msg = codes.InvalidArgument, "the request names nothing the archive can look up"
	case errors.Is(err, ErrNotRecorded):
		code, msg = codes.Unavailable, "the read could not be recorded in the archive's log, so nothing was answered; retry later"
	case errors.Is(err, reader.ErrNotFound):
		code, msg = codes.NotFound, "the archive holds no such message, leaf or checkpoint"
	case errors.Is(err, reader.ErrOutOfRange):
		code, msg = codes.OutOfRange, "the tree size is beyond the current log; retry later"
	case errors.Is(err, reader.ErrUnavailable), errors.As(err, &timeout) && timeout.Timeout():
		code, msg = codes.Unavailable, "the evidence store is unavailable; retry later"
	case errors.Is(err, reader.ErrIntegrity):
		code, msg = codes.DataLoss, "stored evidence failed an integrity check; the archive's audit names it"
	case errors.Is(err, reader.ErrSchema):
		code, msg = codes.FailedPrecondition, "the evidence store is not set up"
	case errors.Is(err, ErrLogKey):
		code, msg = codes.FailedPrecondition, "the service's log public key is not set, or does not verify the log's checkpoint"
	case errors.Is(err, evidence.ErrInvalid):
		code, msg = codes.DataLoss, "stored evidence does not hold together for a bundle; the archive's audit names it"
	}
	if h.log != nil && code != codes.InvalidArgument && code != codes.NotFound {
		h.log.Warn("query: "+op, "code", code.String(), "err", err)
	}
	return status.Error(code, "query: "+op+": "+msg)
}

// ExportEvidenceBundle streams an evidence bundle. Errors before the first chunk are status
// codes as for every RPC; a stream cut later ends without its closing response (Sha256, Size),
// which tells the client the bundle is incomplete.
func (h *Handlers) ExportEvidenceBundle(req *querypb.ExportEvidenceBundleRequest, stream querypb.EvidenceService_ExportEvidenceBundleServer) error {
	ctx := stream.Context()
	who, err := caller(ctx)
	if err != nil {
		return err
	}
	er := ExportRequest{Cite: req.GetCite()}
	for _, ps := range req.GetSelectors() {
		er.Selectors = append(er.Selectors, SelectorFromProto(ps))
	}
	cw := &chunkWriter{stream: stream, sum: sha256.New()}
	bw := bufio.NewWriterSize(cw, ExportChunk)
	err = h.svc.Export(ctx, who, querypb.EvidenceService_ExportEvidenceBundle_FullMethodName, er, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if cw.err != nil { // the client went away
			return cw.err
		}
		return h.statusError(ctx, "export evidence bundle", err)
	}
	return stream.Send(&querypb.ExportEvidenceBundleResponse{Sha256: cw.sum.Sum(nil), Size: cw.n})
}

// chunkWriter sends what is written to it as chunks of at most ExportChunk bytes.
type chunkWriter struct {
	stream querypb.EvidenceService_ExportEvidenceBundleServer
	sum    hash.Hash
	n      int64
	err    error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), ExportChunk)
		if err := c.stream.Send(&querypb.ExportEvidenceBundleResponse{Chunk: p[:n]}); err != nil {
			c.err = err
			return written, err
		}
		c.sum.Write(p[:n])
		c.n += int64(n)
		written += n
		p = p[n:]
	}
	return written, nil
}

// SelectorFromProto converts a selector of the API (an empty one selects nothing, which the
// service refuses).
func SelectorFromProto(ps *querypb.Selector) Selector {
	var sel Selector
	switch s := ps.GetSelector().(type) {
	case *querypb.Selector_Msgid:
		sel.MsgID = s.Msgid
	case *querypb.Selector_PecId:
		sel.PECID = s.PecId
	case *querypb.Selector_Parties:
		sel.Sender, sel.Recipient = s.Parties.GetSender(), s.Parties.GetRecipient()
		sel.Since, sel.Until = timeOf(s.Parties.GetSince()), timeOf(s.Parties.GetUntil())
	}
	return sel
}
