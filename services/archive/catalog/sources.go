package catalog

import (
	"github.com/jackc/pgx/v5"
)

// QueueSourceKeys queues into b, a batch sent inside the writer's transaction after its lock
// (see QueueLockAndLookup), a look-up of the sources recorded for the messages sums: the key of
// each is added to into when b's results are read. A writer adds a leaf for every source it
// records after a message's first (SourceRow.Logged), so it must know which are recorded.
func QueueSourceKeys(b *pgx.Batch, sums [][32]byte, into map[SourceKey]bool) {
	keys := make([][]byte, len(sums))
	for i := range sums {
		keys[i] = sums[i][:]
	}
	b.Queue(`SELECT sha256, mailbox, folder, uidvalidity, uid, path, parent_sha256 FROM message_sources
		WHERE sha256 = ANY($1)`, keys).Query(func(rows pgx.Rows) error {
		var (
			sum, parent []byte
			s           Source
			uv, uid     int64
		)
		_, err := pgx.ForEachRow(rows, []any{&sum, &s.Mailbox, &s.Folder, &uv, &uid, &s.Path, &parent}, func() error {
			var k [32]byte
			copySum(&k, sum)
			src := Source{Mailbox: s.Mailbox, Folder: s.Folder, UIDValidity: uint32(uv), UID: uint32(uid), Path: s.Path}
			copySum(&src.Parent, parent)
			into[KeyOf(k, &src)] = true
			return nil
		})
		return err
	})
}
