package query

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/evidence"
	"github.com/pecarchive/pecarchive/evidence/verdict"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/tlog"
)

// Limits of an export.
const (
	// MaxExportSelectors bounds the selectors of one bundle.
	MaxExportSelectors = 100
	// MaxExportCited bounds the earlier checkpoints one bundle cites.
	MaxExportCited = 16
	// MaxExportConversations bounds the sent messages one bundle answers for (each with its
	// whole conversation: original, envelopes, receipts).
	MaxExportConversations = 10_000
	// ExportChunk is the size of the chunks ExportEvidenceBundle streams.
	ExportChunk = 256 << 10
)

// ExportRequest asks for an evidence bundle.
type ExportRequest struct {
	// Selectors select the messages: every message any of them matches, each with its whole
	// conversation.
	Selectors []Selector
	// Cite are earlier signed checkpoints of the log (an auditor's copy, say): the bundle holds
	// each with the consistency proof from it to the bundle's checkpoint.
	Cite [][]byte
}

// Export writes to w the evidence bundle (package evidence) of the messages req selects: every
// message of their conversations byte-exact with its record, its leaf and its inclusion proof
// against the latest checkpoint, the claims per recipient (the answers of ProveDelivery), the
// signer chains and trust-anchor snapshots the records name, and the cited checkpoints with their
// consistency proofs. The export is recorded as who calling method (the selectors and every
// SHA-256 the bundle holds) before the first byte is written; it fails closed. The bundle is
// streamed: memory holds the records and the manifest, not the messages.
//
// A message newer than the latest checkpoint cannot be proven yet: the export then fails with an
// error wrapping reader.ErrOutOfRange (retry after the archive's next checkpoint).
func (s *Service) Export(ctx context.Context, who Caller, method string, req ExportRequest, w io.Writer) error {
	b, returned, err := s.bundle(ctx, who, req)
	if err != nil {
		return err
	}
	var sels []string
	for _, sel := range req.Selectors {
		sels = append(sels, sel.String())
	}
	if err := s.record(ctx, who, method, "export "+strings.Join(sels, "; "), returned); err != nil {
		return err
	}
	if _, err := evidence.Write(ctx, w, b, content{s.rd}); err != nil {
		return err
	}
	return nil
}

// content serves a bundle's messages from the reader, which checks their SHA-256 as they are
// read.
type content struct{ rd Reader }

func (c content) OpenMessage(ctx context.Context, sum [32]byte) (io.ReadCloser, error) {
	return c.rd.Open(ctx, sum)
}

// bundle gathers what the bundle holds, except the message bytes.
func (s *Service) bundle(ctx context.Context, who Caller, req ExportRequest) (*evidence.Bundle, [][32]byte, error) {
	switch {
	case len(req.Selectors) == 0 || len(req.Selectors) > MaxExportSelectors:
		return nil, nil, invalid("give 1 to %d selectors", MaxExportSelectors)
	case len(req.Cite) > MaxExportCited:
		return nil, nil, invalid("cite at most %d checkpoints", MaxExportCited)
	}
	b := &evidence.Bundle{CreatedAt: time.Now().UTC().Truncate(time.Second), ExportedBy: who.Name}
	// The sent messages the selectors match, each once, in the order asked.
	var msgids []string
	seen := map[string]bool{}
	for _, sel := range req.Selectors {
		if err := sel.check(); err != nil {
			return nil, nil, err
		}
		sel.MsgID, sel.PECID = catalog.MsgID(sel.MsgID), catalog.MsgID(sel.PECID)
		if err := sel.check(); err != nil {
			return nil, nil, err
		}
		b.Selectors = append(b.Selectors, selectorOf(sel))
		key := fmt.Sprintf("export %s", sel)
		for token := ""; ; {
			ids, next, err := s.msgids(ctx, sel, MaxProvePageSize, key, token)
			if err != nil {
				return nil, nil, err
			}
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					msgids = append(msgids, id)
				}
			}
			if len(msgids) > MaxExportConversations {
				return nil, nil, invalid("the selectors match more than %d messages: narrow them", MaxExportConversations)
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	// Their conversations (a query per catalog.MaxKeys of them), the claims, and every row once.
	var rows []catalog.Message
	have := map[[32]byte]bool{}
	convs := make(map[string][]catalog.Message, len(msgids))
	for lo := 0; lo < len(msgids); lo += catalog.MaxKeys {
		part, err := s.rd.MessagesByMsgIDs(ctx, msgids[lo:min(lo+catalog.MaxKeys, len(msgids))], catalog.MaxLimit)
		if err != nil {
			return nil, nil, err
		}
		for k, v := range part {
			convs[k] = v
		}
	}
	for _, id := range msgids {
		// Every sending of the Message-ID (the verifier derives them all from the same rows).
		conv := convs[id]
		for _, a := range verdict.Conversation(id, verdictRows(conv), "") {
			b.Deliveries = append(b.Deliveries, evidence.DeliveryOf(&a, func(i int) string { return hex.EncodeToString(conv[i].SHA256[:]) }))
		}
		for _, m := range conv {
			if !have[m.SHA256] {
				have[m.SHA256] = true
				rows = append(rows, m)
			}
		}
	}
	if len(b.Deliveries) == 0 {
		return nil, nil, fmt.Errorf("%w: no message matches the selectors", reader.ErrNotFound)
	}
	// The checkpoint, fresh: it must cover every message.
	signed, err := s.rd.Checkpoint(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil, nil, fmt.Errorf("%w: the log has no checkpoint yet", reader.ErrOutOfRange)
		}
		return nil, nil, err
	}
	// The bundle carries the log's public key: it must be the one that signed the checkpoint.
	if s.cfg.LogKey == "" {
		return nil, nil, fmt.Errorf("%w: none is configured", ErrLogKey)
	}
	cp, err := tlog.VerifyCheckpoint(signed, s.cfg.LogKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrLogKey, err)
	}
	b.Checkpoint = signed
	idx := make([]uint64, len(rows))
	for i := range rows {
		if rows[i].LeafIndex >= cp.Size {
			return nil, nil, fmt.Errorf("%w: message %x is newer than the log's latest checkpoint (size %d); retry after the next one",
				reader.ErrOutOfRange, rows[i].SHA256[:8], cp.Size)
		}
		idx[i] = rows[i].LeafIndex
	}
	// The leaves as the log holds them, their proofs, and the first sources the leaves cover,
	// each with one query.
	proofs, err := s.rd.InclusionProofs(ctx, idx, cp.Size)
	if err != nil {
		return nil, nil, err
	}
	leaves, err := s.rd.LeavesAt(ctx, idx)
	if err != nil {
		return nil, nil, err
	}
	returned := make([][32]byte, len(rows))
	for i := range rows {
		returned[i] = rows[i].SHA256
	}
	unlogged, err := s.rd.UnloggedSources(ctx, returned)
	if err != nil {
		return nil, nil, err
	}
	chains, anchors := map[[32]byte]bool{}, map[[32]byte]bool{}
	for i := range rows {
		m := &rows[i]
		leaf, err := tlog.ParseLeaf(leaves[i])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: leaf %d: %w", reader.ErrIntegrity, m.LeafIndex, err)
		}
		// The first source is the unlogged one the leaf's digest names (catalog/v2); a
		// catalog/v1 leaf names none, and the earliest is given for information.
		var first catalog.Source
		if srcs := unlogged[m.SHA256]; len(srcs) > 0 {
			first = srcs[0]
			if d, err := catalog.ParseLeafDigest(leaf.Extra); err == nil && d.Version == catalog.DigestV2 {
				for _, src := range srcs {
					if catalog.SourceDigest(m.SHA256, &src) == d.Source {
						first = src
						break
					}
				}
			}
		}
		b.Messages = append(b.Messages, evidence.Message{
			SHA256: hex.EncodeToString(m.SHA256[:]), Size: m.Size, ContainedIn: hexOrEmpty(m.ContainedIn),
			Leaf:           evidence.Leaf{Index: m.LeafIndex, Time: leaf.Time.Unix(), Extra: leaf.Extra},
			InclusionProof: evidence.EncodeHashes(proofs[i]), Record: evidence.RecordOf(m),
			FirstSource: evidence.SourceOf(&first),
		})
		if m.ChainSHA256 != ([32]byte{}) && !chains[m.ChainSHA256] {
			chains[m.ChainSHA256] = true
			cs, err := s.rd.Chain(ctx, m.ChainSHA256)
			if err != nil {
				return nil, nil, err
			}
			b.Chains = append(b.Chains, evidence.Certs{DER: cs.Certs})
		}
		if m.AnchorsSHA256 != ([32]byte{}) && !anchors[m.AnchorsSHA256] {
			anchors[m.AnchorsSHA256] = true
			cs, err := s.rd.Anchors(ctx, m.AnchorsSHA256)
			if err != nil {
				return nil, nil, err
			}
			b.AnchorSets = append(b.AnchorSets, evidence.Certs{DER: cs.Certs, Label: cs.Label})
		}
	}
	// The cited checkpoints, each with its consistency proof.
	for _, c := range req.Cite {
		ecp, err := tlog.ParseCheckpoint(c)
		switch {
		case err != nil:
			return nil, nil, invalid("a cited checkpoint does not parse: %v", err)
		case ecp.Origin != cp.Origin:
			return nil, nil, invalid("a cited checkpoint is of log %q, not %q", ecp.Origin, cp.Origin)
		case ecp.Size > cp.Size:
			return nil, nil, invalid("a cited checkpoint has size %d, beyond the latest checkpoint's %d: retry later", ecp.Size, cp.Size)
		case ecp.Size == cp.Size:
			if !bytes.Equal(ecp.Hash, cp.Hash) {
				// Not ours to judge here: the bundle's verifier names the fork. But a proof from a
				// tree to itself is empty, and the bundle cites only smaller trees.
				return nil, nil, invalid("a cited checkpoint of size %d has another root than the log's", ecp.Size)
			}
			continue
		}
		p, err := s.rd.ConsistencyProof(ctx, ecp.Size, cp.Size)
		if err != nil {
			return nil, nil, err
		}
		b.Earlier = append(b.Earlier, evidence.Cited{Checkpoint: c, Proof: p})
	}
	b.LogKey = s.cfg.LogKey
	return b, returned, nil
}

func hexOrEmpty(s [32]byte) string {
	if s == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(s[:])
}

// selectorOf is a selector in the bundle's terms.
func selectorOf(s Selector) evidence.Selector {
	return evidence.Selector{MsgID: s.MsgID, PECID: s.PECID, Sender: s.Sender, Recipient: s.Recipient,
		Since: evidence.FormatTime(s.Since), Until: evidence.FormatTime(s.Until)}
}
