package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Limits of an access record.
const (
	// MaxAccessReturned bounds the SHA-256s one access record lists.
	MaxAccessReturned = 10_000
	// MaxSelector bounds the selector text of an access record.
	MaxSelector = 2048
)

// Access is one accesses row: one audited read of evidence. The archive's committer writes it in
// the same transaction as an "access" leaf of the log (see [Access.Leaf]), at index LeafIndex.
type Access struct {
	LeafIndex uint64
	// At is when the archive committed the record (microsecond precision).
	At time.Time
	// Principal is who read: the authenticated caller's name (for a command run in-process, the
	// local user).
	Principal string
	// Auth is how the principal authenticated: "token", "mtls", "local".
	Auth string
	// Method is what the principal called: a full gRPC method name
	// ("/pecarchive.query.v1.EvidenceService/ProveDelivery").
	Method string
	// Selector is what the principal asked for, as text ("msgid=<...>", "sha256=...").
	Selector string
	// Returned are the SHA-256s of every message the answer carried, in the answer's order.
	Returned [][32]byte
	// Recorder is the service that recorded the access with the archive (its principal there).
	Recorder string
}

// Normalize makes a storable and canonical: text cleaned and bounded, the time truncated to
// microseconds in UTC. It is idempotent.
func (a *Access) Normalize() {
	a.At = normTime(a.At).UTC()
	a.Principal = clean(a.Principal, MaxID)
	a.Auth = clean(a.Auth, 64)
	a.Method = clean(a.Method, MaxID)
	a.Selector = clean(a.Selector, MaxSelector)
	a.Recorder = clean(a.Recorder, MaxID)
	if len(a.Returned) > MaxAccessReturned {
		a.Returned = a.Returned[:MaxAccessReturned]
	}
}

// Check reports whether a can be recorded: a principal and a method, and no more returned
// messages than MaxAccessReturned. Errors wrap ErrInvalid.
func (a *Access) Check() error {
	switch {
	case strings.TrimSpace(a.Principal) == "":
		return fmt.Errorf("%w: access record without a principal", ErrInvalid)
	case strings.TrimSpace(a.Method) == "":
		return fmt.Errorf("%w: access record without a method", ErrInvalid)
	case len(a.Returned) > MaxAccessReturned:
		return fmt.Errorf("%w: access record of %d messages, over %d", ErrInvalid, len(a.Returned), MaxAccessReturned)
	}
	return nil
}

// AccessDigestVersion prefixes [Access.LeafExtra].
const AccessDigestVersion = "access/v1"

// Digest returns the SHA-256 of a canonical, length-prefixed encoding of every field of a but
// LeafIndex (which the leaf's position carries), after [Access.Normalize]. It does not modify a.
func (a *Access) Digest() [32]byte {
	c := *a
	c.Normalize()
	var b bytes.Buffer
	b.WriteString(AccessDigestVersion)
	str := func(s string) {
		var n [binary.MaxVarintLen64]byte
		b.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		b.WriteString(s)
	}
	num := func(v int64) {
		var n [binary.MaxVarintLen64]byte
		b.Write(n[:binary.PutVarint(n[:], v)])
	}
	num(c.At.UnixMicro())
	str(c.Principal)
	str(c.Auth)
	str(c.Method)
	str(c.Selector)
	num(int64(len(c.Returned)))
	for _, s := range c.Returned {
		b.Write(s[:])
	}
	str(c.Recorder)
	return sha256.Sum256(b.Bytes())
}

// ReturnedDigest is the SHA256 field of the access's leaf: what was accessed, the SHA-256 of the
// concatenated SHA-256s of the returned messages (of the empty string when none was returned).
func (a *Access) ReturnedDigest() [32]byte {
	h := sha256.New()
	for _, s := range a.Returned {
		h.Write(s[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// LeafExtra returns the Extra field of the access's log leaf: "access/v1 " and the hex
// [Access.Digest].
func (a *Access) LeafExtra() string {
	d := a.Digest()
	return AccessDigestVersion + " " + hex.EncodeToString(d[:])
}

// ParseAccessLeafExtra returns the access digest carried by an access leaf's Extra field.
func ParseAccessLeafExtra(extra string) ([32]byte, error) {
	var d [32]byte
	h, ok := strings.CutPrefix(extra, AccessDigestVersion+" ")
	if !ok || len(h) != 64 {
		return d, fmt.Errorf("%w: leaf extra %.80q is not an %s digest", ErrInvalid, extra, AccessDigestVersion)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("%w: leaf extra: %v", ErrInvalid, err)
	}
	return d, nil
}

// queueAccesses queues the insert of new access rows (normalised, LeafIndex and At set).
func queueAccesses(batch *pgx.Batch, as []Access) {
	if len(as) == 0 {
		return
	}
	idx := make([]int64, len(as))
	at := make([]time.Time, len(as))
	principal, auth, method, selector, recorder := make([]string, len(as)), make([]string, len(as)),
		make([]string, len(as)), make([]string, len(as)), make([]string, len(as))
	returned := make([][]byte, len(as))
	for i := range as {
		a := &as[i]
		idx[i], at[i] = int64(a.LeafIndex), a.At
		principal[i], auth[i], method[i], selector[i], recorder[i] = a.Principal, a.Auth, a.Method, a.Selector, a.Recorder
		returned[i] = concatSums(a.Returned)
	}
	batch.Queue(`INSERT INTO accesses (leaf_index, at, principal, auth, method, selector, returned, recorder)
		SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::text[])`,
		idx, at, principal, auth, method, selector, returned, recorder)
}

// concatSums returns the concatenation of sums (an empty, non-nil slice for none).
func concatSums(sums [][32]byte) []byte {
	b := make([]byte, 0, 32*len(sums))
	for _, s := range sums {
		b = append(b, s[:]...)
	}
	return b
}

// ScanAccesses calls fn for every access row with leaf_index >= from, in leaf-index order,
// reading in pages of MaxLimit.
func (c *Catalog) ScanAccesses(ctx context.Context, from uint64, fn func(Access) error) error {
	next := int64(from) - 1
	for {
		rows, err := c.db.Query(ctx, `SELECT leaf_index, at, principal, auth, method, selector, returned, recorder
			FROM accesses WHERE leaf_index > $1 ORDER BY leaf_index LIMIT $2`, next, MaxLimit)
		if err != nil {
			return fmt.Errorf("catalog: scan accesses: %w", err)
		}
		var page []Access
		var (
			a        Access
			idx      int64
			returned []byte
		)
		_, err = pgx.ForEachRow(rows, []any{&idx, &a.At, &a.Principal, &a.Auth, &a.Method, &a.Selector, &returned, &a.Recorder}, func() error {
			x := a
			x.LeafIndex, x.At = uint64(idx), a.At.UTC()
			x.Returned = make([][32]byte, len(returned)/32)
			for i := range x.Returned {
				copy(x.Returned[i][:], returned[32*i:])
			}
			page = append(page, x)
			return nil
		})
		if err != nil {
			return fmt.Errorf("catalog: scan accesses: %w", err)
		}
		for _, x := range page {
			if err := fn(x); err != nil {
				return err
			}
			next = int64(x.LeafIndex)
		}
		if len(page) < MaxLimit {
			return nil
		}
	}
}
