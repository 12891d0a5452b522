package catalog

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ConversationQuery selects the originals (by msgid) a sender sent, or a recipient was sent, in
// a time range, newest first, from the deliveries rows (one per original and recipient; an
// original gets them with its first receipt).
type ConversationQuery struct {
	Sender    string
	Recipient string    // at least one of Sender and Recipient
	Since     time.Time // sent (accepted_at) >= Since, when set
	Until     time.Time // sent (accepted_at) < Until, when set
	// After continues a previous page: its last Conversation.
	After *Conversation
	Limit int // 0: DefaultLimit; at most MaxLimit
}

// Conversation is one original found by [Catalog.Conversations].
type Conversation struct {
	MsgID string
	// SentAt is when the sender's provider accepted it (the latest acceptance time among its
	// rows); zero when no acceptance is archived.
	SentAt time.Time
}

// Conversations returns the originals matching q, newest first (originals without an archived
// acceptance last), then by msgid descending: a stable order for keyset paging.
func (c *Catalog) Conversations(ctx context.Context, q ConversationQuery) ([]Conversation, error) {
	where, args, arg, err := deliveriesWhere(q.Sender, q.Recipient, q.Since, q.Until)
	if err != nil {
		return nil, err
	}
	var having []string
	if a := q.After; a != nil {
		m := arg(MsgID(a.MsgID))
		if a.SentAt.IsZero() {
			having = append(having, "max(accepted_at) IS NULL AND msgid < "+m)
		} else {
			t := arg(normTime(a.SentAt))
			having = append(having, "(max(accepted_at) < "+t+" OR max(accepted_at) = "+t+" AND msgid < "+m+" OR max(accepted_at) IS NULL)")
		}
	}
	sql := `SELECT msgid, max(accepted_at) FROM deliveries WHERE ` + strings.Join(where, " AND ") + ` GROUP BY msgid`
	if len(having) > 0 {
		sql += ` HAVING ` + strings.Join(having, " AND ")
	}
	sql += ` ORDER BY 2 DESC NULLS LAST, 1 DESC LIMIT ` + arg(limit(q.Limit))
	rows, err := c.db.Query(ctx, sql, *args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: conversations: %w", err)
	}
	var out []Conversation
	var id string
	var at *time.Time
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		cv := Conversation{MsgID: id}
		if at != nil {
			cv.SentAt = at.UTC()
		}
		out = append(out, cv)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: conversations: %w", err)
	}
	return out, nil
}
