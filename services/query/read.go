package query

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/tlog"
)

// Open returns the exact bytes of the message sum and their size, after recording the read as
// who calling method. The postacert.eml of a complete delivery receipt opens by its own SHA-256.
// The reader verifies the SHA-256 as it goes and fails at EOF on a mismatch.
func (s *Service) Open(ctx context.Context, who Caller, method string, sum [32]byte) (io.ReadCloser, int64, error) {
	m, err := s.rd.Message(ctx, sum)
	if err != nil {
		return nil, 0, err
	}
	rc, err := s.rd.Open(ctx, sum)
	if err != nil {
		return nil, 0, err
	}
	if err := s.record(ctx, who, method, "sha256="+hex.EncodeToString(sum[:]), [][32]byte{sum}); err != nil {
		rc.Close()
		return nil, 0, err
	}
	return rc, m.Size, nil
}

// Filter selects messages for Search; every field set must match.
type Filter struct {
	Sender, Recipient string
	SubjectWords      []string
	Kinds             []pec.Kind
	// Signature is "", catalog.SignatureTrusted, SignatureNotTrusted or SignatureNotValid.
	Signature    string
	Since, Until time.Time
}

// String is the filter as recorded in the access log.
func (f Filter) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("sender", f.Sender)
	add("recipient", f.Recipient)
	add("subject", strings.Join(f.SubjectWords, ","))
	var ks []string
	for _, k := range f.Kinds {
		ks = append(ks, string(k))
	}
	add("kinds", strings.Join(ks, ","))
	add("signature", f.Signature)
	if !f.Since.IsZero() {
		add("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		add("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	return strings.Join(parts, " ")
}

func (f Filter) check() error {
	switch {
	case len(f.SubjectWords) > MaxSubjectWords:
		return invalid("at most %d subject words", MaxSubjectWords)
	case len(f.Kinds) > MaxKinds:
		return invalid("at most %d kinds", MaxKinds)
	case len(f.SubjectWords) > 0 && f.Sender == "" && f.Recipient == "" &&
		(f.Since.IsZero() || f.Until.IsZero() || f.Until.Sub(f.Since) > MaxSubjectRange):
		return invalid("subject words narrow a search: give a sender, a recipient or a time range of at most %d days with them",
			MaxSubjectRange/(24*time.Hour))
	case len(f.Sender) > catalog.MaxID || len(f.Recipient) > catalog.MaxID:
		return invalid("an address is over %d bytes", catalog.MaxID)
	case !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until):
		return invalid("since must be before until")
	}
	for _, w := range f.SubjectWords {
		if strings.TrimSpace(w) == "" || len(w) > MaxWordLen {
			return invalid("a subject word is empty or over %d bytes", MaxWordLen)
		}
	}
	for _, k := range f.Kinds {
		if k != pec.KindNotPEC && !pecKind(k) {
			return invalid("unknown kind %q", k)
		}
	}
	switch f.Signature {
	case "", catalog.SignatureTrusted, catalog.SignatureNotTrusted, catalog.SignatureNotValid:
	default:
		return invalid("unknown signature filter %q", f.Signature)
	}
	return nil
}

func pecKind(k pec.Kind) bool {
	for _, x := range pec.Kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Page is a page of search results.
type Page struct {
	Messages      []catalog.Message
	NextPageToken string
}

// Search returns a page of the messages f selects in the order the archive received them, after
// recording the read (with the SHA-256s of the page) as who calling method.
func (s *Service) Search(ctx context.Context, who Caller, method string, f Filter, size int, token string) (*Page, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	size, err := pageSize(size, DefaultSearchPageSize, MaxSearchPageSize)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("search %s %d", f, size)
	q := catalog.Query{Sender: f.Sender, Recipient: f.Recipient, Kinds: f.Kinds, Since: f.Since, Until: f.Until,
		SubjectWords: f.SubjectWords, Signature: f.Signature, Limit: size + 1}
	if token != "" {
		pos, err := decodeToken(key, token)
		if err != nil || len(pos.key) != 32 || pos.at.IsZero() {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, errToken)
		}
		q.After = &catalog.Message{SHA256: [32]byte(pos.key), ReceivedAt: pos.at}
	}
	qctx, cancel := context.WithTimeout(ctx, s.cfg.SearchTimeout)
	defer cancel()
	ms, err := s.rd.Search(qctx, q)
	if err != nil {
		return nil, err
	}
	p := &Page{Messages: ms}
	if len(ms) > size {
		p.Messages = ms[:size]
		last := p.Messages[size-1]
		p.NextPageToken = encodeToken(key, position{at: last.ReceivedAt, key: last.SHA256[:]})
	}
	returned := make([][32]byte, len(p.Messages))
	for i, m := range p.Messages {
		returned[i] = m.SHA256
	}
	if err := s.record(ctx, who, method, f.String(), returned); err != nil {
		return nil, err
	}
	return p, nil
}

// Checkpoint returns the latest signed checkpoint. Reads of the log are not recorded: it is
// public by design and carries no message content.
func (s *Service) Checkpoint(ctx context.Context) (Checkpoint, error) {
	signed, err := s.rd.Checkpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := tlog.ParseCheckpoint(signed)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: the latest checkpoint does not parse: %w", reader.ErrIntegrity, err)
	}
	return Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Signed: signed}, nil
}

// InclusionProof returns the proof that leaf index is in the tree of the given size, and the
// leaf.
func (s *Service) InclusionProof(ctx context.Context, index, size uint64) (proof [][]byte, leaf []byte, err error) {
	if index >= size {
		return nil, nil, invalid("leaf_index %d is not below tree_size %d", index, size)
	}
	if proof, err = s.rd.InclusionProof(ctx, index, size); err != nil {
		return nil, nil, err
	}
	if leaf, err = s.rd.LeafData(ctx, index); err != nil {
		return nil, nil, err
	}
	return proof, leaf, nil
}

// ConsistencyProof returns the proof that the tree of size from is a prefix of the tree of size
// to.
func (s *Service) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from > to {
		return nil, invalid("from_size %d is over to_size %d", from, to)
	}
	return s.rd.ConsistencyProof(ctx, from, to)
}
