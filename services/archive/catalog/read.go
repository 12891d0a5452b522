package catalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/pec"
)

// Result-size limits of the read queries.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func limit(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// Get returns the message with SHA-256 sum, or ErrNotFound.
func (c *Catalog) Get(ctx context.Context, sum [32]byte) (Message, error) {
	m, err := scanMessage(c.db.QueryRow(ctx, `SELECT `+msgSelect+` FROM messages WHERE sha256 = $1`, sum[:]))
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, fmt.Errorf("%w: message %x", ErrNotFound, sum)
	}
	if err != nil {
		return Message{}, fmt.Errorf("catalog: get: %w", err)
	}
	return m, nil
}

// Lookup returns the stored messages among sums.
func (c *Catalog) Lookup(ctx context.Context, sums [][32]byte) (map[[32]byte]Message, error) {
	return Lookup(ctx, c.db, sums)
}

// Count returns the number of messages.
func (c *Catalog) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := c.db.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: count: %w", err)
	}
	return n, nil
}

// Sources returns where the message sum was found, first seen first.
func (c *Catalog) Sources(ctx context.Context, sum [32]byte) ([]Source, error) {
	rows, err := c.db.Query(ctx, `SELECT mailbox, folder, uidvalidity, uid, internaldate, path, parent_sha256, first_seen
		FROM message_sources WHERE sha256 = $1 ORDER BY first_seen, id LIMIT $2`, sum[:], MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("catalog: sources: %w", err)
	}
	var out []Source
	var (
		s        Source
		uv, uid  int64
		internal *time.Time
		parent   []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&s.Mailbox, &s.Folder, &uv, &uid, &internal, &s.Path, &parent, &s.FirstSeen}, func() error {
		x := s
		x.UIDValidity, x.UID = uint32(uv), uint32(uid)
		if internal != nil {
			x.InternalDate = internal.UTC()
		} else {
			x.InternalDate = time.Time{}
		}
		x.Parent = [32]byte{}
		copySum(&x.Parent, parent)
		x.FirstSeen = x.FirstSeen.UTC()
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: sources: %w", err)
	}
	return out, nil
}

func (c *Catalog) messages(ctx context.Context, sql string, args ...any) ([]Message, error) {
	rows, err := c.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ByMsgID returns the messages whose own Message-ID is msgid (the original, or its copies) or
// that refer to it (receipts, envelopes), oldest first, at most limit (0: DefaultLimit).
func (c *Catalog) ByMsgID(ctx context.Context, msgid string, n int) ([]Message, error) {
	return c.byKey(ctx, "msgid", "ref_msgid", msgid, n)
}

// ByPECID returns the messages carrying the PEC id (daticert identificativo, or as Message-ID:
// an envelope and the provider copies of the original), oldest first, at most limit (0: DefaultLimit).
func (c *Catalog) ByPECID(ctx context.Context, pecID string, n int) ([]Message, error) {
	return c.byKey(ctx, "PEC id", "pec_id", pecID, n)
}

// byKeySQL selects, for ByMsgID and ByPECID, the messages whose message_id or the other key
// column (%s, twice) is the key; each branch is a scan of its partial index that reads the rows
// it finds. The second branch leaves out the rows of the first (message_id is the key), so no
// row comes twice and none is looked up again by its primary key.
const byKeySQL = `SELECT ` + msgSelect + ` FROM messages WHERE message_id <> '' AND message_id = $1
	UNION ALL SELECT ` + msgSelect + ` FROM messages WHERE %s <> '' AND %s = $1 AND message_id <> $1
	ORDER BY received_at, sha256 LIMIT $2`

// byKey is the body of ByMsgID and ByPECID: the messages whose message_id or column col is key.
func (c *Catalog) byKey(ctx context.Context, what, col, key string, n int) ([]Message, error) {
	key = MsgID(key)
	if key == "" {
		return nil, fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	ms, err := c.messages(ctx, fmt.Sprintf(byKeySQL, col, col), key, limit(n))
	if err != nil {
		return nil, fmt.Errorf("catalog: by %s: %w", what, err)
	}
	return ms, nil
}

// Links returns the links from and to the message sum.
func (c *Catalog) Links(ctx context.Context, sum [32]byte) ([]Link, error) {
	rows, err := c.db.Query(ctx, `SELECT referrer_sha256, original_sha256, via FROM message_links WHERE referrer_sha256 = $1
		UNION SELECT referrer_sha256, original_sha256, via FROM message_links WHERE original_sha256 = $1
		ORDER BY 3, 1, 2 LIMIT $2`, sum[:], MaxLimit)
	if err != nil {
		return nil, fmt.Errorf("catalog: links: %w", err)
	}
	var out []Link
	var r, o []byte
	var via string
	_, err = pgx.ForEachRow(rows, []any{&r, &o, &via}, func() error {
		var l Link
		copySum(&l.Referrer, r)
		copySum(&l.Original, o)
		l.Via = via
		out = append(out, l)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: links: %w", err)
	}
	return out, nil
}

const deliverySelect = `msgid, recipient, pec_id, sender, state, receipt_type, errore, errore_esteso,
	original_sha256, acceptance_sha256, delivery_sha256, nondelivery_sha256, warning_sha256,
	accepted_at, state_at, problem, updated_at`

func (c *Catalog) deliveries(ctx context.Context, sql string, args ...any) ([]Delivery, error) {
	rows, err := c.db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: deliveries: %w", err)
	}
	var out []Delivery
	var (
		d                        Delivery
		state, rtype, errore     string
		orig, acc, del, nd, warn []byte
		acceptedAt, stateAt      *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&d.MsgID, &d.Recipient, &d.PECID, &d.Sender, &state, &rtype, &errore, &d.ErroreEsteso,
		&orig, &acc, &del, &nd, &warn, &acceptedAt, &stateAt, &d.Problem, &d.UpdatedAt}, func() error {
		x := d
		x.State, x.ReceiptType, x.Errore = DeliveryState(state), pec.ReceiptType(rtype), pec.ErrorCode(errore)
		x.Original, x.Acceptance, x.Delivery, x.NonDelivery, x.Warning = [32]byte{}, [32]byte{}, [32]byte{}, [32]byte{}, [32]byte{}
		copySum(&x.Original, orig)
		copySum(&x.Acceptance, acc)
		copySum(&x.Delivery, del)
		copySum(&x.NonDelivery, nd)
		copySum(&x.Warning, warn)
		x.AcceptedAt, x.StateAt = time.Time{}, time.Time{}
		if acceptedAt != nil {
			x.AcceptedAt = acceptedAt.UTC()
		}
		if stateAt != nil {
			x.StateAt = stateAt.UTC()
		}
		x.UpdatedAt = x.UpdatedAt.UTC()
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: deliveries: %w", err)
	}
	return out, nil
}

// Deliveries returns the deliveries of the original with Message-ID msgid, by recipient.
func (c *Catalog) Deliveries(ctx context.Context, msgid string) ([]Delivery, error) {
	return c.deliveriesBy(ctx, "msgid", "msgid", msgid)
}

// DeliveriesByPECID returns the deliveries of the message with PEC id pecID.
func (c *Catalog) DeliveriesByPECID(ctx context.Context, pecID string) ([]Delivery, error) {
	return c.deliveriesBy(ctx, "PEC id", "pec_id", pecID)
}

// deliveriesBy is the body of Deliveries and DeliveriesByPECID: the rows whose column col is key.
func (c *Catalog) deliveriesBy(ctx context.Context, what, col, key string) ([]Delivery, error) {
	key = MsgID(key)
	if key == "" {
		return nil, fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	return c.deliveries(ctx, `SELECT `+deliverySelect+` FROM deliveries WHERE `+col+` <> '' AND `+col+` = $1
		ORDER BY msgid, recipient LIMIT $2`, key, MaxLimit)
}

// deliveriesWhere returns the conditions on the deliveries rows of a sender and/or a recipient
// (one is required) and an acceptance time range, their arguments, and the function that adds
// one more argument and returns its placeholder.
func deliveriesWhere(sender, recipient string, since, until time.Time) ([]string, *[]any, func(any) string, error) {
	var where []string
	args := new([]any)
	arg := func(v any) string { *args = append(*args, v); return "$" + strconv.Itoa(len(*args)) }
	if sender != "" {
		where = append(where, "sender = "+arg(addr(sender)))
	}
	if recipient != "" {
		where = append(where, "recipient = "+arg(addr(recipient)))
	}
	if len(where) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: a sender or a recipient is required", ErrInvalid)
	}
	if !since.IsZero() {
		where = append(where, "accepted_at >= "+arg(since))
	}
	if !until.IsZero() {
		where = append(where, "accepted_at < "+arg(until))
	}
	return where, args, arg, nil
}

// DeliveryQuery selects deliveries by sender and/or recipient and the acceptance time.
type DeliveryQuery struct {
	Sender    string
	Recipient string
	Since     time.Time // accepted_at >= Since, when set
	Until     time.Time // accepted_at < Until, when set
	Limit     int       // 0: DefaultLimit; at most MaxLimit
}

// SearchDeliveries returns the deliveries matching q, oldest acceptance first.
func (c *Catalog) SearchDeliveries(ctx context.Context, q DeliveryQuery) ([]Delivery, error) {
	where, args, arg, err := deliveriesWhere(q.Sender, q.Recipient, q.Since, q.Until)
	if err != nil {
		return nil, err
	}
	sql := `SELECT ` + deliverySelect + ` FROM deliveries WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY accepted_at NULLS LAST, msgid, recipient LIMIT ` + arg(limit(q.Limit))
	return c.deliveries(ctx, sql, *args...)
}

// ConversationKey returns the msgid under which the deliveries of m are kept: its RefMsgID.
func ConversationKey(m *Message) string {
	if m.RefMsgID != "" {
		return m.RefMsgID
	}
	return RefMsgID(m.Kind, m.MessageID, m.OrigMsgID, m.XRiferimento)
}

// Query selects messages for [Catalog.Search]. Every set field must match.
type Query struct {
	Sender    string     // messages.sender (daticert mittente, else From)
	Recipient string     // one of the recipients; for a receipt about one recipient (consegna), that one
	Kinds     []pec.Kind // any of these kinds
	Since     time.Time  // received_at >= Since
	Until     time.Time  // received_at < Until
	// SubjectWords must each occur in the subject, case-insensitively. No index serves them: they
	// filter the rows the other conditions walk.
	SubjectWords []string
	// Signature selects by the verdict on the signature: "" any, SignatureTrusted (valid and
	// trusted), SignatureNotTrusted (not both), SignatureNotValid.
	Signature string
	// After continues a previous page: the (ReceivedAt, SHA256) of its last message.
	After *Message
	Limit int // 0: DefaultLimit; at most MaxLimit
}

// Signature filters of [Query].
const (
	SignatureTrusted    = "trusted"
	SignatureNotTrusted = "not-trusted"
	SignatureNotValid   = "not-valid"
)

// Search returns messages matching q ordered by (received_at, sha256).
func (c *Catalog) Search(ctx context.Context, q Query) ([]Message, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	// With a recipient, walk message_recipients in (received_at, sha256) order and join.
	t := "m"
	from := `messages m`
	if q.Recipient != "" {
		t = "r"
		from = `message_recipients r JOIN messages m ON m.sha256 = r.sha256`
		where = append(where, "r.recipient = "+arg(addr(q.Recipient)))
	}
	if q.Sender != "" {
		where = append(where, "m.sender = "+arg(addr(q.Sender)))
	}
	if len(q.Kinds) > 0 {
		ks := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			ks[i] = string(k)
		}
		where = append(where, "m.kind = ANY("+arg(ks)+")")
	}
	for _, w := range q.SubjectWords {
		where = append(where, "strpos(lower(m.subject), lower("+arg(w)+")) > 0")
	}
	switch q.Signature {
	case "":
	case SignatureTrusted:
		where = append(where, "m.sig_valid AND m.sig_trusted")
	case SignatureNotTrusted:
		where = append(where, "NOT (m.sig_valid AND m.sig_trusted)")
	case SignatureNotValid:
		where = append(where, "NOT m.sig_valid")
	default:
		return nil, fmt.Errorf("%w: signature filter %q", ErrInvalid, q.Signature)
	}
	if !q.Since.IsZero() {
		where = append(where, t+".received_at >= "+arg(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, t+".received_at < "+arg(q.Until))
	}
	if q.After != nil {
		where = append(where, "("+t+".received_at, "+t+".sha256) > ("+arg(normTime(q.After.ReceivedAt))+", "+arg(q.After.SHA256[:])+")")
	}
	sql := `SELECT ` + msgSelectAs("m") + ` FROM ` + from
	if len(where) > 0 {
		sql += ` WHERE ` + strings.Join(where, " AND ")
	}
	sql += ` ORDER BY ` + t + `.received_at, ` + t + `.sha256 LIMIT ` + arg(limit(q.Limit))
	ms, err := c.messages(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: search: %w", err)
	}
	return ms, nil
}

// Scan calls fn for every message in leaf-index order, reading in pages of MaxLimit (so it does
// not hold one long query open).
func (c *Catalog) Scan(ctx context.Context, fn func(Message) error) error {
	next := int64(-1)
	for {
		ms, err := c.messages(ctx, `SELECT `+msgSelect+` FROM messages WHERE leaf_index > $1 ORDER BY leaf_index LIMIT $2`,
			next, MaxLimit)
		if err != nil {
			return fmt.Errorf("catalog: scan: %w", err)
		}
		for _, m := range ms {
			if err := fn(m); err != nil {
				return err
			}
			next = int64(m.LeafIndex)
		}
		if len(ms) < MaxLimit {
			return nil
		}
	}
}

// Chain returns the certificate chain stored under sum.
func (c *Catalog) Chain(ctx context.Context, sum [32]byte) (CertSet, error) {
	cs := CertSet{SHA256: sum}
	err := c.db.QueryRow(ctx, `SELECT certs FROM cert_chains WHERE sha256 = $1`, sum[:]).Scan(&cs.Certs)
	if errors.Is(err, pgx.ErrNoRows) {
		return CertSet{}, fmt.Errorf("%w: chain %x", ErrNotFound, sum)
	}
	if err != nil {
		return CertSet{}, fmt.Errorf("catalog: chain: %w", err)
	}
	return cs, nil
}

// Anchors returns the trust-anchor set stored under sum.
func (c *Catalog) Anchors(ctx context.Context, sum [32]byte) (CertSet, error) {
	cs := CertSet{SHA256: sum}
	err := c.db.QueryRow(ctx, `SELECT label, certs FROM trust_anchor_sets WHERE sha256 = $1`, sum[:]).Scan(&cs.Label, &cs.Certs)
	if errors.Is(err, pgx.ErrNoRows) {
		return CertSet{}, fmt.Errorf("%w: anchor set %x", ErrNotFound, sum)
	}
	if err != nil {
		return CertSet{}, fmt.Errorf("catalog: anchors: %w", err)
	}
	return cs, nil
}
