package catalog

import (
	"context"
	"fmt"
)

// MaxKeys bounds the msgids of one [Catalog.ByMsgIDs] call.
const MaxKeys = 1000

// ByMsgIDs is [Catalog.ByMsgID] for many msgids with one query: for each of msgids, the messages
// whose own Message-ID is it or that refer to it, oldest first, at most n each (0:
// DefaultLimit). An evidence bundle reads the conversations of all its notices with it.
func (c *Catalog) ByMsgIDs(ctx context.Context, msgids []string, n int) (map[string][]Message, error) {
	if len(msgids) > MaxKeys {
		return nil, fmt.Errorf("%w: %d msgids at once, limit %d", ErrInvalid, len(msgids), MaxKeys)
	}
	want := make(map[string]bool, len(msgids))
	keys := make([]string, 0, len(msgids))
	for _, id := range msgids {
		if k := MsgID(id); k != "" && !want[k] {
			want[k] = true
			keys = append(keys, k)
		}
	}
	out := make(map[string][]Message, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	per := limit(n)
	ms, err := c.messages(ctx, `SELECT `+msgSelect+` FROM messages WHERE sha256 IN (
		SELECT sha256 FROM messages WHERE message_id <> '' AND message_id = ANY($1)
		UNION SELECT sha256 FROM messages WHERE ref_msgid <> '' AND ref_msgid = ANY($1))
	ORDER BY received_at, sha256 LIMIT $2`, keys, per*len(keys))
	if err != nil {
		return nil, fmt.Errorf("catalog: by msgids: %w", err)
	}
	for _, m := range ms {
		for i, k := range []string{m.MessageID, m.RefMsgID} {
			if want[k] && (i == 0 || k != m.MessageID) && len(out[k]) < per {
				out[k] = append(out[k], m)
			}
		}
	}
	return out, nil
}
