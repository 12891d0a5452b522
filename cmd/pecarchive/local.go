package main

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// local is the evidence store opened in-process from the settings: the archive (the single
// writer) and a read-only reader over the same pool, blob store and log.
type local struct {
	Pool    *pgxpool.Pool
	Blobs   blob.Store
	Log     *merklelog.Log
	Archive *archive.Archive
	Reader  *reader.Reader
}

// openLocal opens the archive and a reader in-process from the settings: pool (migrated), blob
// store, signed log and the archive's signature verifier (PECARCHIVE_TRUST,
// PECARCHIVE_PROVIDER_INDEX). cfg, when not nil, supplies further archive settings (its Pool, Blobs,
// Log and NoMigrate are set here). close closes the archive, then the pool.
func (s settings) openLocal(ctx context.Context, cfg *archive.Config) (l *local, close func(), err error) {
	l = &local{}
	if l.Pool, err = s.openPool(ctx); err != nil {
		return nil, nil, err
	}
	pool := l.Pool // l is nil once an error is returned
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := archive.Migrate(ctx, l.Pool); err != nil {
		return nil, nil, err
	}
	if l.Blobs, _, err = s.openBlobs(ctx); err != nil {
		return nil, nil, err
	}
	if l.Log, _, err = s.openLog(ctx, l.Pool, l.Blobs, true); err != nil {
		return nil, nil, err
	}
	var c archive.Config
	if cfg != nil {
		c = *cfg
	}
	c.Pool, c.Blobs, c.Log, c.NoMigrate = l.Pool, l.Blobs, l.Log, true
	if c.Verifier == nil {
		if c.Verifier, err = s.verifier(); err != nil {
			return nil, nil, err
		}
	}
	if c.CheckpointInterval == 0 {
		if c.CheckpointInterval, err = s.duration("PECARCHIVE_CHECKPOINT_INTERVAL", time.Minute); err != nil {
			return nil, nil, err
		}
	}
	if l.Reader, err = reader.New(ctx, reader.Config{Pool: l.Pool, Blobs: l.Blobs, Log: l.Log}); err != nil {
		return nil, nil, err
	}
	if l.Archive, err = archive.New(ctx, c); err != nil {
		return nil, nil, err
	}
	return l, func() {
		l.Archive.Close(context.Background())
		l.Pool.Close()
	}, nil
}
