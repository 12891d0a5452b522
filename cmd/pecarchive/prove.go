package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/query"
)

// Settings of `pecarchive prove`:
//
//	PECARCHIVE_QUERY_ADDR        host:port of a running query service; unset: answer in-process
//	PECARCHIVE_QUERY_TOKEN_FILE  bearer token for it (or PECARCHIVE_QUERY_TOKEN)
//	PECARCHIVE_QUERY_CA_FILE     CA of its server certificate; with it the connection uses TLS
//	PECARCHIVE_QUERY_CERT_FILE, PECARCHIVE_QUERY_KEY_FILE   client certificate for mTLS

func init() {
	register("prove", "answer whether a notice reached its recipients, with the receipts and their proofs", runProve)
}

// Exit status of prove when no message matched (the contract: 0 some matched, 3 none, 2 usage
// or I/O, 1 any other failure).
const exitNoMatch = 3

// proveJSON is the output of `pecarchive prove --json` (a contract: see ARCHITECTURE.md).
type proveJSON struct {
	Checkpoint struct {
		Origin string `json:"origin"`
		Size   uint64 `json:"size"`
		Root   string `json:"root"`
		Text   string `json:"text"`
	} `json:"checkpoint"`
	Messages []proveMessageJSON `json:"messages"`
}

type proveMessageJSON struct {
	MsgID      string               `json:"msgid"`
	PECID      string               `json:"pec_id"`
	Subject    string               `json:"subject"`
	Sender     string               `json:"sender"`
	SentAt     string               `json:"sent_at"`
	SHA256     string               `json:"sha256"`
	Recipients []proveRecipientJSON `json:"recipients"`
}

type proveRecipientJSON struct {
	Address       string             `json:"address"`
	Verdict       string             `json:"verdict"`
	ExplanationIT string             `json:"explanation_it"`
	ExplanationEN string             `json:"explanation_en"`
	At            string             `json:"at"`
	Receipts      []proveReceiptJSON `json:"receipts"`
	// Conflicts (an extension of the contract) are the SHA-256s of valid receipts about the
	// recipient that contradict each other.
	Conflicts []string `json:"conflicts"`
}

type proveReceiptJSON struct {
	SHA256         string   `json:"sha256"`
	Kind           string   `json:"kind"`
	ReceiptType    string   `json:"receipt_type"`
	Error          string   `json:"error"`
	Provider       string   `json:"provider"`
	Time           string   `json:"time"`
	SignedAt       string   `json:"signed_at"`
	Valid          bool     `json:"valid"`
	Trusted        bool     `json:"trusted"`
	Reasons        []string `json:"reasons"`
	LeafIndex      uint64   `json:"leaf_index"`
	InclusionProof []string `json:"inclusion_proof"`
}

func stamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func hexOrEmpty(b []byte) string { return hex.EncodeToString(b) }

func nonNilStrings(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// proveToJSON converts an answer to the contract's shape.
func proveToJSON(resp *querypb.ProveDeliveryResponse) proveJSON {
	var out proveJSON
	cp := resp.GetCheckpoint()
	out.Checkpoint.Origin, out.Checkpoint.Size = cp.GetOrigin(), cp.GetSize()
	if len(cp.GetRoot()) > 0 {
		out.Checkpoint.Root = base64.StdEncoding.EncodeToString(cp.GetRoot())
	}
	out.Checkpoint.Text = string(cp.GetSigned())
	out.Messages = []proveMessageJSON{}
	for _, m := range resp.GetMessages() {
		jm := proveMessageJSON{MsgID: m.GetMsgid(), PECID: m.GetPecId(), Subject: m.GetSubject(), Sender: m.GetSender(),
			SentAt: stamp(m.GetSentAt()), SHA256: hexOrEmpty(m.GetSha256()), Recipients: []proveRecipientJSON{}}
		for _, r := range m.GetRecipients() {
			jr := proveRecipientJSON{Address: r.GetAddress(), Verdict: query.VerdictName(r.GetVerdict()),
				ExplanationIT: r.GetExplanationIt(), ExplanationEN: r.GetExplanationEn(), At: r.GetAt(), Receipts: []proveReceiptJSON{},
				Conflicts: []string{}}
			for _, c := range r.GetConflictingSha256() {
				jr.Conflicts = append(jr.Conflicts, hex.EncodeToString(c))
			}
			for _, rc := range r.GetReceipts() {
				jrc := proveReceiptJSON{SHA256: hexOrEmpty(rc.GetSha256()), Kind: rc.GetKind(), ReceiptType: rc.GetReceiptType(),
					Error: rc.GetError(), Provider: rc.GetProvider(), Time: rc.GetTime(), SignedAt: stamp(rc.GetSignedAt()),
					Valid: rc.GetValid(), Trusted: rc.GetTrusted(), Reasons: nonNilStrings(rc.GetReasons()),
					LeafIndex: rc.GetLeafIndex(), InclusionProof: []string{}}
				for _, h := range rc.GetInclusionProof() {
					jrc.InclusionProof = append(jrc.InclusionProof, base64.StdEncoding.EncodeToString(h))
				}
				jr.Receipts = append(jr.Receipts, jrc)
			}
			jm.Recipients = append(jm.Recipients, jr)
		}
		out.Messages = append(out.Messages, jm)
	}
	return out
}

// proveFunc asks one page.
type proveFunc func(ctx context.Context, req *querypb.ProveDeliveryRequest) (*querypb.ProveDeliveryResponse, error)

// maxProvePages bounds the pages prove collects (50 messages each).
const maxProvePages = 100

// proveAll collects every page of the answer into one, whose proofs are all against one
// checkpoint: when a checkpoint is published between pages, it asks again from the start.
func proveAll(ctx context.Context, ask proveFunc, req *querypb.ProveDeliveryRequest) (*querypb.ProveDeliveryResponse, error) {
	for attempt := 0; ; attempt++ {
		var all *querypb.ProveDeliveryResponse
		req.PageToken = ""
		for page := 0; ; page++ {
			resp, err := ask(ctx, req)
			if err != nil {
				return nil, err
			}
			if all == nil {
				all = resp
			} else {
				if resp.GetCheckpoint().GetSize() != all.GetCheckpoint().GetSize() {
					all = nil
					break
				}
				all.Messages = append(all.Messages, resp.GetMessages()...)
			}
			if resp.GetNextPageToken() == "" || page+1 == maxProvePages {
				all.NextPageToken = resp.GetNextPageToken()
				return all, nil
			}
			req.PageToken = resp.GetNextPageToken()
		}
		if attempt == 2 {
			return nil, errors.New("the log's checkpoint kept moving while the answer was collected; ask again")
		}
	}
}

func runProve(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("prove", flag.ContinueOnError)
	fset.SetOutput(stderr)
	config := fset.String("config", "", "config file of PECARCHIVE_* settings (environment overrides it)")
	asJSON := fset.Bool("json", false, "print one JSON object (the contract's) instead of a readable answer")
	sf := addSelectorFlags(fset)
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: pecarchive prove [--config FILE] [--json] (--msgid ID | --pec-id ID | --sender ADDR [--recipient ADDR] [--since RFC3339] [--until RFC3339])")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return exitUsage
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "pecarchive prove: %s\n", msg)
		fset.Usage()
		return exitUsage
	}
	if fset.NArg() > 0 {
		return usageErr("unexpected arguments: " + strings.Join(fset.Args(), " "))
	}
	sel, err := sf.selector()
	if err != nil {
		return usageErr(err.Error())
	}
	if sel == nil {
		return usageErr("give one of --msgid, --pec-id, --sender")
	}
	req := &querypb.ProveDeliveryRequest{PageSize: query.MaxProvePageSize}
	switch x := sel.GetSelector().(type) {
	case *querypb.Selector_Msgid:
		req.Selector = &querypb.ProveDeliveryRequest_Msgid{Msgid: x.Msgid}
	case *querypb.Selector_PecId:
		req.Selector = &querypb.ProveDeliveryRequest_PecId{PecId: x.PecId}
	case *querypb.Selector_Parties:
		req.Selector = &querypb.ProveDeliveryRequest_Parties{Parties: x.Parties}
	}
	s, err := loadSettings(*config)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive prove: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ask, closeAsk, err := s.proveClient(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive prove: %v\n", err)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return exitUsage // a settings file that cannot be read
		}
		return exitNotValid
	}
	defer closeAsk()
	resp, err := proveAll(ctx, ask, req)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive prove: %s\n", describeStatus(err))
		if status.Code(err) == codes.InvalidArgument {
			return exitUsage
		}
		return exitNotValid
	}
	if *asJSON {
		b, err := json.Marshal(proveToJSON(resp))
		if err != nil {
			fmt.Fprintf(stderr, "pecarchive prove: %v\n", err)
			return exitNotValid
		}
		if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
			return exitUsage
		}
	} else if len(resp.GetMessages()) > 0 {
		printProof(stdout, resp)
	}
	if resp.GetNextPageToken() != "" {
		fmt.Fprintf(stderr, "pecarchive prove: only the first %d notices are shown; narrow the selection (--recipient, --since, --until) to see the others\n",
			len(resp.GetMessages()))
	}
	if len(resp.GetMessages()) == 0 {
		if !*asJSON {
			fmt.Fprintln(stderr, "pecarchive prove: no archived message matches")
		}
		return exitNoMatch
	}
	return exitOK
}

// describeStatus says what a gRPC failure means for the person at the terminal.
func describeStatus(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return "not authenticated: set PECARCHIVE_QUERY_TOKEN_FILE or a client certificate (" + st.Message() + ")"
	case codes.PermissionDenied:
		return "your role may not ask this (" + st.Message() + ")"
	case codes.Unavailable:
		return "the service is unavailable, retry later (" + st.Message() + ")"
	}
	return st.Message()
}

// proveClient returns the way to ask: the query service at PECARCHIVE_QUERY_ADDR, or the service
// opened in-process, asking as the local user (the read is recorded as "local:<user>").
func (s settings) proveClient(ctx context.Context) (proveFunc, func(), error) {
	if addr := s.get("PECARCHIVE_QUERY_ADDR", ""); addr != "" {
		conn, client, err := s.dialQuery(addr)
		if err != nil {
			return nil, nil, err
		}
		ask := func(ctx context.Context, req *querypb.ProveDeliveryRequest) (*querypb.ProveDeliveryResponse, error) {
			return client.ProveDelivery(ctx, req)
		}
		return ask, func() { conn.Close() }, nil
	}
	loc, closeLocal, err := s.openLocal(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	// The writer is here: a checkpoint of the log as it is now, so that every receipt is
	// proven (a no-op when the log did not grow).
	if _, err := loc.Archive.Publish(ctx); err != nil {
		closeLocal()
		return nil, nil, err
	}
	svc, err := query.New(ctx, query.Config{Reader: loc.Reader, Recorder: loc.Archive})
	if err != nil {
		closeLocal()
		return nil, nil, err
	}
	h := query.NewHandlers(svc, nil)
	me := localUser()
	ask := func(ctx context.Context, req *querypb.ProveDeliveryRequest) (*querypb.ProveDeliveryResponse, error) {
		return h.ProveDelivery(auth.WithPrincipal(ctx, auth.Principal{Name: me, Method: "local"}), req)
	}
	return ask, closeLocal, nil
}

// localUser names the person running a command in-process, for the access record.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "local:" + u.Username
	}
	return "local:unknown"
}

// signatureWords says how a receipt's signature fared, as the verdict rule sees it: it fails
// when it is not valid, not trusted, or has a reason against it that is not a warning.
func signatureWords(rc *querypb.Receipt) string {
	var against, warnings []string
	for _, r := range rc.GetReasons() {
		if smime.IsWarning(r) {
			warnings = append(warnings, r)
		} else {
			against = append(against, r)
		}
	}
	if !rc.GetValid() || !rc.GetTrusted() || len(against) > 0 {
		return "SIGNATURE FAILS: " + strings.Join(append(against, warnings...), ", ")
	}
	if len(warnings) > 0 {
		return "signature valid and trusted (warnings: " + strings.Join(warnings, ", ") + ")"
	}
	return "signature valid and trusted"
}

// printProof writes the answer for a person.
func printProof(w io.Writer, resp *querypb.ProveDeliveryResponse) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	for i, m := range resp.GetMessages() {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "Notice %q\n", m.GetSubject())
		fmt.Fprintf(tw, "  msgid %s", m.GetMsgid())
		if m.GetPecId() != "" {
			fmt.Fprintf(tw, ", PEC id %s", m.GetPecId())
		}
		fmt.Fprintln(tw)
		if m.GetSender() != "" || m.GetSentAt() != nil {
			fmt.Fprintf(tw, "  from %s, sent %s\n", m.GetSender(), stamp(m.GetSentAt()))
		}
		for _, r := range m.GetRecipients() {
			fmt.Fprintf(tw, "\n  %s\t%s\n", r.GetAddress(), query.VerdictName(r.GetVerdict()))
			fmt.Fprintf(tw, "    %s\n    %s\n", r.GetExplanationIt(), r.GetExplanationEn())
			for _, rc := range r.GetReceipts() {
				sig := signatureWords(rc)
				proof := "not yet under a checkpoint"
				if len(rc.GetInclusionProof()) > 0 || resp.GetCheckpoint().GetSize() > rc.GetLeafIndex() {
					proof = fmt.Sprintf("in the log, %d-hash proof", len(rc.GetInclusionProof()))
				}
				kind := rc.GetKind()
				if rc.GetReceiptType() != "" {
					kind += " (" + rc.GetReceiptType() + ")"
				}
				fmt.Fprintf(tw, "    - %s\t%s\t%s\tleaf %d, %s\tsha256 %s\n", kind, rc.GetTime(), sig, rc.GetLeafIndex(), proof, hex.EncodeToString(rc.GetSha256()))
			}
		}
	}
	cp := resp.GetCheckpoint()
	if cp.GetSize() > 0 {
		fmt.Fprintf(tw, "\nEvery proof above is against this signed checkpoint of the log (%s, %d leaves); check it with the log's public key:\n%s",
			cp.GetOrigin(), cp.GetSize(), indent(string(cp.GetSigned())))
	} else if len(resp.GetMessages()) > 0 {
		fmt.Fprintln(tw, "\nThe log has no signed checkpoint yet: no inclusion proof can be given.")
	}
}
