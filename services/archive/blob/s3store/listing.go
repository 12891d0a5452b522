package s3store

import (
	"context"
	"slices"

	"github.com/minio/minio-go/v7"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

// maxListedVersions bounds the versions of one key that versionsByKey keeps (for a checkpoint
// key that is blob.MaxCheckpointVersions): anyone with the service's credentials can write any
// number of versions or delete markers over a key.
const maxListedVersions = blob.MaxCheckpointVersions

// versionsByKey lists every version and delete marker under prefix after the key after and
// calls fn once per key, in key order, with the key's entries as listed (newest first, but see
// below), each version once, at most maxListedVersions of them: past that the oldest and the
// current one (IsLatest) are kept, and dropped counts the others.
//
// A listing is in key order, but a server may send a page's delete markers ahead of its
// versions (versitygw does) and repeat an entry at a page boundary: a key's entries are
// gathered until an entry that is not a delete marker comes with a greater key, after which
// none of a smaller key can come. AuditWalk and the checkpoints' listing read through it.
func (s *Store) versionsByKey(ctx context.Context, prefix, after string, fn func(key string, vs []minio.ObjectInfo, dropped int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type entries struct {
		vs      []minio.ObjectInfo
		dropped int
	}
	pending := map[string]*entries{}
	flush := func(below string, all bool) error {
		var keys []string
		for k := range pending {
			if all || k < below {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			e := pending[k]
			delete(pending, k)
			if err := fn(k, e.vs, e.dropped); err != nil {
				return err
			}
		}
		return nil
	}
	for o := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{
		Prefix: prefix, Recursive: true, WithVersions: true, StartAfter: after, MaxKeys: s.listPageSize,
	}) {
		if o.Err != nil {
			return s.wrap("list versions", prefix, o.Err)
		}
		if !o.IsDeleteMarker {
			if err := flush(o.Key, false); err != nil {
				return err
			}
		}
		e := pending[o.Key]
		if e == nil {
			e = &entries{}
			pending[o.Key] = e
		}
		if o.VersionID != "" && slices.ContainsFunc(e.vs, func(x minio.ObjectInfo) bool { return x.VersionID == o.VersionID }) {
			continue // listed again at a page boundary
		}
		if len(e.vs) < maxListedVersions {
			e.vs = append(e.vs, o)
			continue
		}
		// Past the bound: keep the oldest and the current one, drop the newest of the others.
		e.dropped++
		newest := -1
		for i, x := range e.vs {
			if !x.IsLatest && (newest < 0 || x.LastModified.After(e.vs[newest].LastModified)) {
				newest = i
			}
		}
		if newest >= 0 && (o.IsLatest || o.LastModified.Before(e.vs[newest].LastModified)) {
			e.vs[newest] = o
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return flush("", true)
}
