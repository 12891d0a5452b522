package audit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// TestAuditSchemaAltered: the tables' owner (no superuser) makes the server answer otherwise
// than the rows say, without touching a row: a function of theirs that takes the place of
// pg_catalog's unnest(anyarray) for text arrays, a migration's function replaced, row security on
// the delivery events, a view in place of the deliveries, a trigger disabled, a rule, an
// operator, a column given another collation. Before, the audit read through all of it and said
// OK; now it names each (schema-altered).
func TestAuditSchemaAltered(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, sql := range []string{
		`CREATE FUNCTION unnest(text[]) RETURNS SETOF text LANGUAGE sql AS 'SELECT x FROM pg_catalog.unnest($1) x WHERE x <> ''c@pec.esempio.it'''`,
		`CREATE OR REPLACE FUNCTION catalog_clip(s text, n integer) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$ BEGIN RETURN s; END $$`,
		`ALTER TABLE delivery_events ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY only_some ON delivery_events USING (current_user <> 'pecarchive_query' OR ok)`,
		`ALTER TABLE deliveries RENAME TO deliveries_kept`,
		`CREATE VIEW deliveries AS SELECT * FROM deliveries_kept`,
		`ALTER TABLE message_links DISABLE TRIGGER message_links_written_once`,
		`CREATE RULE keep_quiet AS ON UPDATE TO messages DO INSTEAD NOTHING`,
		`CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq)`,
		`ALTER TABLE delivery_events ALTER COLUMN errore TYPE text COLLATE "C"`,
	} {
		if _, err := e.pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	e.pool.Reset() // an audit is a process of its own: no statement prepared before the changes
	rep := e.audit()
	if rep.OK() {
		t.Fatal("an altered schema audits OK")
	}
	for _, words := range [][]string{
		{"unnest(text[])", "none of the migrations'"},
		{"catalog_clip", "body was replaced"},
		{"delivery_events", "row security"},
		{"deliveries", "not a plain table"},
		{"message_links", "message_links_written_once", "disabled"},
		{"messages", "1 rules"},
		{"operator", "==="},
		{"delivery_events", "errore", "collation"},
	} {
		if !named(rep, audit.SchemaAltered, words...) {
			t.Errorf("not named: %s", strings.Join(words, " "))
		}
	}
}

// TestAuditSchemaVersion: a schema whose migrations are not those this audit reads is refused
// with the reason, not audited wrongly.
func TestAuditSchemaVersion(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.pool.Exec(context.Background(), `DELETE FROM `+catalog.VersionTable+` WHERE version = (SELECT max(version) FROM `+catalog.VersionTable+`)`); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Run(context.Background(), e.cfg); err == nil || !strings.Contains(err.Error(), "pecarchive migrate") {
		t.Fatalf("audit of a schema a migration behind: %v, want a refusal that says to migrate", err)
	}
}
