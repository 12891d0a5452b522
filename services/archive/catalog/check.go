package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DeliveryMismatch is a deliveries row that is not what its msgid's delivery events and
// original make it (see CheckDeliveries).
type DeliveryMismatch struct {
	MsgID, Recipient string
	What             string // how it differs
}

// DeliveryMsgIDs returns, in order, up to limit msgids after after that have delivery events or
// deliveries rows: the pages of CheckDeliveries.
func DeliveryMsgIDs(ctx context.Context, db DB, after string, limit int) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT msgid FROM (
			(SELECT msgid FROM delivery_events WHERE msgid > $1 ORDER BY msgid LIMIT $2)
			UNION
			(SELECT msgid FROM deliveries WHERE msgid > $1 ORDER BY msgid LIMIT $2)) k
		ORDER BY msgid LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: delivery msgids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("catalog: delivery msgids: %w", err)
	}
	return ids, nil
}

// CheckDeliveries derives the deliveries of msgids again from all their delivery events and
// their original, as a commit does, and returns the stored rows that differ, are missing or are
// extra: a deliveries row altered, deleted or added by anything but the archive's commits.
func CheckDeliveries(ctx context.Context, db DB, msgids []string) ([]DeliveryMismatch, error) {
	if len(msgids) == 0 {
		return nil, nil
	}
	// Every msgid derived whole ($4), no new events ($5, $6).
	rows, err := db.Query(ctx, checkDeliveriesSQL, msgids, time.Time{}, MaxText, msgids, []string{}, []string{})
	if err != nil {
		return nil, fmt.Errorf("catalog: check deliveries: %w", err)
	}
	var out []DeliveryMismatch
	var d DeliveryMismatch
	var ignored time.Time
	_, err = pgx.ForEachRow(rows, []any{&d.MsgID, &d.Recipient, &d.What, &ignored}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: check deliveries: %w", err)
	}
	return out, nil
}
