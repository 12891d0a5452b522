package archive

import (
	"context"
	"errors"
	"fmt"

	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// Append-only or nothing. The archive signs a checkpoint only for a tree that extends the latest
// checkpoint it signed (merklelog.Log.Publish proves it with a consistency proof from the stored
// nodes, against the newer of the database's latest checkpoint and the latest kept on
// write-once storage, verified with the log's key). New refuses to start when the stored log
// fails that check (merklelog.Log.CheckAppendOnly). A refusal while running stops signing for
// good: it is counted (Stats.Refused), reported once through Config.OnError, and every later
// Publish fails with ErrSigningStopped until the archive is restarted after repair, when New
// checks again.

// ErrSigningStopped: the archive refused to sign a checkpoint (the tree does not extend the
// latest signed checkpoint, or the log's checkpoints are not signed by its key) and signs no
// more until it is restarted. Errors wrapping it also wrap ErrIntegrity and the merklelog error
// that says why.
var ErrSigningStopped = errors.New("archive: checkpoint signing stopped")

// refusal reports whether err is the log refusing to sign.
func refusal(err error) bool {
	return errors.Is(err, merklelog.ErrForked) || errors.Is(err, merklelog.ErrWrongKey)
}

// checkAppendOnly is New's check of a signing log against its latest signed checkpoint.
func (a *Archive) checkAppendOnly(ctx context.Context) error {
	if !a.log.CanSign() {
		return nil
	}
	err := a.log.CheckAppendOnly(ctx)
	if err == nil {
		return nil
	}
	if refusal(err) {
		a.stats.refused.Add(1)
		err = fmt.Errorf("%w: the archive will not sign for this log: %w", ErrSigningStopped, err)
	}
	return classify("check the log against its latest signed checkpoint", err)
}

func (a *Archive) publish(ctx context.Context) ([]byte, error) {
	if stopped := a.stopped.Load(); stopped != nil {
		return nil, *stopped
	}
	signed, err := a.log.Publish(ctx)
	if err == nil {
		a.stats.published.Add(1)
		return signed, nil
	}
	if !refusal(err) {
		return nil, classify("publish checkpoint", err)
	}
	a.stats.refused.Add(1)
	err = classify("publish checkpoint", fmt.Errorf("%w until the archive is restarted after repair: %w", ErrSigningStopped, err))
	if a.stopped.CompareAndSwap(nil, &err) && a.cfg.OnError != nil {
		a.cfg.OnError(err)
	}
	return nil, *a.stopped.Load()
}
