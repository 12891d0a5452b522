package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// UnloggedSources returns, for each of sums, its sources that have no log leaf of their own
// (leaf_index NULL): the first source, which a catalog/v2 message leaf covers, and for a message
// archived before catalog/v2 every source recorded then. First seen first.
func (c *Catalog) UnloggedSources(ctx context.Context, sums [][32]byte) (map[[32]byte][]Source, error) {
	keys := make([][]byte, len(sums))
	for i := range sums {
		keys[i] = sums[i][:]
	}
	rows, err := c.db.Query(ctx, `SELECT sha256, mailbox, folder, uidvalidity, uid, internaldate, path, parent_sha256, first_seen
		FROM message_sources WHERE leaf_index IS NULL AND sha256 = ANY($1) ORDER BY sha256, first_seen, id`, keys)
	if err != nil {
		return nil, fmt.Errorf("catalog: unlogged sources: %w", err)
	}
	out := make(map[[32]byte][]Source, len(sums))
	var (
		sum, parent []byte
		s           Source
		uv, uid     int64
		internal    *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&sum, &s.Mailbox, &s.Folder, &uv, &uid, &internal, &s.Path, &parent, &s.FirstSeen}, func() error {
		x := s
		x.UIDValidity, x.UID = uint32(uv), uint32(uid)
		x.InternalDate = time.Time{}
		if internal != nil {
			x.InternalDate = internal.UTC()
		}
		x.Parent = [32]byte{}
		copySum(&x.Parent, parent)
		x.FirstSeen = x.FirstSeen.UTC()
		var k [32]byte
		copySum(&k, sum)
		out[k] = append(out[k], x)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: unlogged sources: %w", err)
	}
	return out, nil
}
