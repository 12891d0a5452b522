package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// catalogFloor is bench archive's second floor, the least work any archive with a catalog must
// do per receipt: the floor's PUT, then one minimal catalog row (the receipt's SHA-256, key and
// size, primary key on the SHA-256) committed in a PostgreSQL transaction with the rows of other
// receipts, one transaction at a time, each caller waiting for its row's commit as a Store call
// waits for its group commit. Transactions hold as many rows as the archive's do on average
// (one INSERT of them all, one round trip); the table is created in the benchmark's throw-away
// schema.
type catalogFloor struct {
	put  *floorRunner // PUTs into a bucket of their own
	pool *pgxpool.Pool
	// Counted over the runs: transactions and the time they took.
	txs    int
	commit time.Duration
}

// catalogFloorIdle is how long the committer waits for more rows before committing a short
// transaction: only at the end of a run, when a PUT failed and its row will never come.
const catalogFloorIdle = time.Second

func newCatalogFloor(ctx context.Context, cfg archiveBenchConfig, pool *pgxpool.Pool, bucket string) (*catalogFloor, error) {
	f, err := newFloor(ctx, cfg, bucket)
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_floor_catalog (sha256 bytea PRIMARY KEY, key text NOT NULL, size bigint NOT NULL)`); err != nil {
		return nil, err
	}
	return &catalogFloor{put: f, pool: pool}, nil
}

type floorRow struct {
	sum  [32]byte
	key  string
	size int64
	done chan error
}

// run PUTs msgs, committing their rows in transactions of batch rows (fewer at the end of msgs,
// and never more than the concurrency, which could not fill them), and returns how long it took.
func (c *catalogFloor) run(ctx context.Context, msgs [][]byte, batch int) (time.Duration, error) {
	batch = max(1, min(batch, c.put.concurrency))
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	rows := make(chan floorRow)
	committed := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(committed)
		remaining := len(msgs)
		var pending []floorRow
		idle := time.NewTimer(catalogFloorIdle)
		defer idle.Stop()
		flush := func() {
			t := time.Now()
			sums, keys, sizes := make([][]byte, len(pending)), make([]string, len(pending)), make([]int64, len(pending))
			for i, r := range pending {
				sums[i], keys[i], sizes[i] = r.sum[:], r.key, r.size
			}
			_, err := conn.Exec(ctx, `INSERT INTO bench_floor_catalog (sha256, key, size) SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[])`,
				sums, keys, sizes)
			if err != nil {
				err = fmt.Errorf("catalog row: %w", err)
			}
			c.txs++
			c.commit += time.Since(t)
			for _, r := range pending {
				r.done <- err
			}
			remaining -= len(pending)
			pending = pending[:0]
		}
		for {
			select {
			case r, ok := <-rows:
				if !ok {
					if len(pending) > 0 {
						flush()
					}
					return
				}
				pending = append(pending, r)
				if len(pending) >= min(batch, remaining) {
					flush()
				}
				idle.Reset(catalogFloorIdle)
			case <-idle.C:
				if len(pending) > 0 {
					flush()
				}
				idle.Reset(catalogFloorIdle)
			}
		}
	}()
	err = parallel(len(msgs), c.put.concurrency, func(i int) error {
		sum, key, err := c.put.putOne(ctx, msgs[i])
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		rows <- floorRow{sum: sum, key: key, size: int64(len(msgs[i])), done: done}
		return <-done
	})
	close(rows)
	<-committed
	return time.Since(start), err
}
