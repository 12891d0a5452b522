package catalog

import (
	"context"
	"fmt"
	"strings"
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

// checkDeliveriesSQL is the difference of derived and cur: rows stored but not derived, derived
// but not stored, and stored otherwise than derived, each column that differs named with both
// values ($2 is selected only so that the server can type it: the derivation does not use it).
var checkDeliveriesSQL = deriveDeliveriesSQL + `)
SELECT coalesce(v.msgid, x.msgid), coalesce(v.recipient, x.recipient),
	CASE WHEN v.msgid IS NULL THEN format('stored (state %s) but not derived from the events', x.state)
	     WHEN x.msgid IS NULL THEN format('derived from the events (state %s) but not stored', v.state)
	     ELSE 'stored otherwise than derived from the events: ' || concat_ws('; ', ` + deliveryDiffSQL() + `) END,
	$2::timestamptz
FROM derived v FULL JOIN cur x ON x.msgid = v.msgid AND x.recipient = v.recipient
WHERE v.msgid IS NULL OR x.msgid IS NULL OR ` + deliveryDiffersSQL + `
ORDER BY 1, 2`

// deliveryDiffSQL names each column that deliveryDiffersSQL compares and the stored row x and the
// derived row v hold otherwise.
func deliveryDiffSQL() string { return columnsDiffSQL(deliveryCompared...) }

// rowsDifferSQL returns a condition true when the stored row x and the derived row v differ
// (IS DISTINCT FROM) in one of cols.
func rowsDifferSQL(cols ...string) string {
	x, v := make([]string, len(cols)), make([]string, len(cols))
	for i, c := range cols {
		x[i], v[i] = "x."+c, "v."+c
	}
	return "(" + strings.Join(x, ", ") + ")\n\tIS DISTINCT FROM (" + strings.Join(v, ", ") + ")"
}

// columnsDiffSQL returns, for each column, an expression that is NULL when the stored row x and
// the derived row v agree on it, else names the column and both values (a *_sha256 in hex), for
// concat_ws.
func columnsDiffSQL(cols ...string) string {
	var out []string
	for _, c := range cols {
		x, v := "x."+c+"::text", "v."+c+"::text"
		if strings.HasSuffix(c, "_sha256") {
			x, v = "encode(x."+c+", 'hex')", "encode(v."+c+", 'hex')"
		}
		out = append(out, fmt.Sprintf(`CASE WHEN x.%[1]s IS DISTINCT FROM v.%[1]s THEN format('%[1]s %%s, derived %%s', coalesce(%[2]s, 'none'), coalesce(%[3]s, 'none')) END`, c, x, v))
	}
	return strings.Join(out, ",\n\t")
}
