package archive

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SetHooks installs failure-injection hooks (nil clears one). Call before any Store.
func SetHooks(a *Archive, afterPut func(sum [32]byte) error, beforeCommit func(ctx context.Context, tx pgx.Tx) error, afterCommit func() error) {
	a.hooks = hooks{afterPut: afterPut, beforeCommit: beforeCommit, afterCommit: afterCommit}
}
