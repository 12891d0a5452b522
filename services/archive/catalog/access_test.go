package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/pgerr"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// Access rows are written by Write, read back in leaf order as written, their digest is stable
// and covers every field, and the table refuses updates and deletes.
func TestAccesses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	as := []catalog.Access{
		{LeafIndex: 3, At: at, Principal: "segreteria", Auth: "token", Method: "/pecarchive.query.v1.EvidenceService/ProveDelivery",
			Selector: "msgid=<a@x>", Returned: [][32]byte{sum("a"), sum("b")}, Recorder: "query"},
		{LeafIndex: 7, At: at, Principal: "ufficio\x00legale", Method: "/m", Returned: nil},
	}
	for i := range as {
		as[i].Normalize()
		if err := as[i].Check(); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Write(ctx, tx, &catalog.Batch{Accesses: as}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var got []catalog.Access
	if err := e.cat.ScanAccesses(ctx, 0, func(a catalog.Access) error { got = append(got, a); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d rows", len(got))
	}
	for i := range got {
		if got[i].Digest() != as[i].Digest() || got[i].LeafExtra() != as[i].LeafExtra() || got[i].LeafIndex != as[i].LeafIndex {
			t.Errorf("row %d read back as %+v, written %+v", i, got[i], as[i])
		}
		d, err := catalog.ParseAccessLeafExtra(got[i].LeafExtra())
		if err != nil || d != got[i].Digest() {
			t.Errorf("leaf extra: %v", err)
		}
	}
	if !slices.Equal(got[0].Returned, as[0].Returned) || len(got[1].Returned) != 0 || got[1].Principal != "ufficiolegale" {
		t.Errorf("rows: %+v", got)
	}
	if got[0].ReturnedDigest() == got[1].ReturnedDigest() {
		t.Error("returned digests equal")
	}
	var from7 []uint64
	e.cat.ScanAccesses(ctx, 4, func(a catalog.Access) error { from7 = append(from7, a.LeafIndex); return nil })
	if !slices.Equal(from7, []uint64{7}) {
		t.Errorf("scan from 4: %v", from7)
	}
	// Every field is in the digest.
	base := as[0]
	for name, change := range map[string]func(*catalog.Access){
		"at":        func(a *catalog.Access) { a.At = a.At.Add(time.Microsecond) },
		"principal": func(a *catalog.Access) { a.Principal += "x" },
		"auth":      func(a *catalog.Access) { a.Auth = "mtls" },
		"method":    func(a *catalog.Access) { a.Method += "x" },
		"selector":  func(a *catalog.Access) { a.Selector += "x" },
		"returned":  func(a *catalog.Access) { a.Returned = a.Returned[:1] },
		"recorder":  func(a *catalog.Access) { a.Recorder = "" },
	} {
		c := base
		c.Returned = slices.Clone(base.Returned)
		change(&c)
		if c.Digest() == base.Digest() {
			t.Errorf("changing %s leaves the digest", name)
		}
	}
	for _, bad := range []catalog.Access{{Method: "/m"}, {Principal: "p"}, {Principal: "p", Method: "/m", Returned: make([][32]byte, catalog.MaxAccessReturned+1)}} {
		if err := bad.Check(); !errors.Is(err, catalog.ErrInvalid) {
			t.Errorf("Check(%+v): %v", bad.Principal, err)
		}
	}
	if _, err := catalog.ParseAccessLeafExtra("catalog/v1 00"); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("ParseAccessLeafExtra of a message digest: %v", err)
	}
	// Written once.
	for _, sql := range []string{`UPDATE accesses SET principal = 'other'`, `DELETE FROM accesses`, `TRUNCATE accesses`} {
		if _, err := e.pool.Exec(ctx, sql); pgerr.Code(err) != "23001" {
			t.Errorf("%s: %v, want restrict_violation", sql, err)
		}
	}
}

// The migrations create the read-only role pecarchive_query: connected with it, every table of
// the schema reads and none writes.
func TestReadOnlyRole(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.store(original("ro@x", "a@pec.it"))
	// A table created after the migration by the migrating role is readable too.
	if _, err := e.pool.Exec(ctx, `CREATE TABLE later (x int); INSERT INTO later VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	cfg := e.pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["role"] = "pecarchive_query"
	ro, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var role string
	var n int
	if err := ro.QueryRow(ctx, `SELECT current_user, (SELECT count(*) FROM messages) + (SELECT count(*) FROM later)`).Scan(&role, &n); err != nil || role != "pecarchive_query" || n != 2 {
		t.Fatalf("read as %q: %d rows, %v", role, n, err)
	}
	for _, sql := range []string{
		`INSERT INTO accesses (leaf_index, at, principal, method) VALUES (1, now(), 'p', 'm')`,
		`UPDATE deliveries SET state = 'delivered'`,
		`DELETE FROM message_sources`,
		`INSERT INTO later VALUES (2)`,
		`CREATE TABLE sneaky (x int)`,
	} {
		if _, err := ro.Exec(ctx, sql); pgerr.Code(err) != "42501" {
			t.Errorf("%s as pecarchive_query: %v, want insufficient_privilege", sql, err)
		}
	}
	// Other schemas migrating at the same time (the role is cluster-wide) do not fail.
	var pools []*pgxpool.Pool
	for range 3 {
		pools = append(pools, testenv.PG(t))
	}
	errs := make(chan error, len(pools))
	for _, p := range pools {
		go func() {
			if err := catalog.Migrate(ctx, p); err != nil {
				errs <- err
				return
			}
			var ok bool
			err := p.QueryRow(ctx, `SELECT has_schema_privilege('pecarchive_query', current_schema(), 'USAGE')`).Scan(&ok)
			if err == nil && !ok {
				err = fmt.Errorf("pecarchive_query may not use the schema")
			}
			errs <- err
		}()
	}
	for range pools {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
