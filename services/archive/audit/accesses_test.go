package audit_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// The records of reads of evidence are audited like the messages: a row altered, deleted, or
// added without its leaf is named.
func TestAuditAccesses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, nil, nil)
	pool, fs, log, prov, a := f.pool, f.blobs, f.log, f.prov, f.a
	o, _ := prov.Original(&pectest.Original{Subject: "Accessi", MessageID: "accessi@pec.ordine.example.it"})
	acc, _ := prov.Acceptance(pectest.Params{Original: o})
	rec, err := a.Store(ctx, acc.Bytes, archive.Source{Path: "acc"})
	if err != nil {
		t.Fatal(err)
	}
	var recs []catalog.Access
	for i := range 4 {
		r, err := a.RecordAccess(ctx, catalog.Access{Principal: fmt.Sprint("reader-", i), Auth: "token", Method: "/m",
			Selector: "msgid=" + o.MessageID, Returned: [][32]byte{rec.SHA256}, Recorder: "query"})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	cfg := audit.Config{Pool: pool, Blobs: fs, Log: log}
	rep, err := audit.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.AccessLeaves != 4 || rep.AccessRows != 4 || rep.MessageLeaves != 1 {
		t.Fatalf("clean: %+v", rep)
	}

	// An insider with write access to PostgreSQL: the written-once triggers turned off, then
	// 1. who read changed, 2. what was returned emptied, 3. a row deleted, 4. a row claiming a
	// message's leaf, 5. a row beyond the log.
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`ALTER TABLE accesses DISABLE TRIGGER USER`)
	exec(`UPDATE accesses SET principal = 'nobody' WHERE leaf_index = $1`, int64(recs[0].LeafIndex))
	exec(`UPDATE accesses SET returned = ''::bytea WHERE leaf_index = $1`, int64(recs[1].LeafIndex))
	exec(`DELETE FROM accesses WHERE leaf_index = $1`, int64(recs[2].LeafIndex))
	exec(`INSERT INTO accesses (leaf_index, at, principal, method) VALUES ($1, now(), 'ghost', '/m'), (1000, now(), 'phantom', '/m')`, int64(rec.LeafIndex))
	rep, err = audit.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Log(f)
	}
	for _, c := range []struct {
		what string
		kind string
		leaf uint64
	}{
		{"principal changed", audit.AccessAltered, recs[0].LeafIndex},
		{"returned emptied", audit.AccessAltered, recs[1].LeafIndex},
		{"row deleted", audit.AccessLeafNotInCatalog, recs[2].LeafIndex},
		{"row on a message leaf", audit.AccessLeafMismatch, rec.LeafIndex},
		{"row beyond the log", audit.AccessNotInLog, 1000},
	} {
		if !finds(rep, c.kind, [32]byte{}, int64(c.leaf)) {
			t.Errorf("%s: no %s finding at leaf %d", c.what, c.kind, c.leaf)
		}
	}
	if rep.OK() || finds(rep, audit.AccessAltered, [32]byte{}, int64(recs[3].LeafIndex)) {
		t.Error("an untouched access row named, or the audit passes")
	}
}
