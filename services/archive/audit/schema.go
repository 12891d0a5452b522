package audit

import (
	"context"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/internal/pgmigrate"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// The audit asks PostgreSQL for the rows it checks and, for the derived rows, has the server
// derive and compare them. Whoever owns the tables (not a superuser) can make the server answer
// otherwise than the rows say without touching a row: a view in place of a table, row security
// policies or rules that show the audit and the query service different rows, a function in the
// schema that takes the place of a built-in one in the statements (an unnest(text[]) of theirs
// beats pg_catalog's unnest(anyarray)), a migration's function replaced, a trigger disabled. So
// before reading anything the audit checks that the schema is the migrations': every table of
// the catalog and the log a plain table without row security, policies or rules, with the
// migrations' triggers, enabled, and no others, and no function or operator in the schemas of
// the search path but the migrations', with their bodies. A superuser can still change what the
// server itself does; an audit of a copy restored into a server of the auditor's (pg_dump of the
// data, then pecarchive migrate and audit there) does not depend on it.

// SchemaAltered names a table, trigger, function or operator of the catalog's and the log's
// schema that is not as their migrations made it.
const SchemaAltered = "schema-altered"

// expectedSchema is what the catalog's and the log's migrations create.
type expectedSchema struct {
	tables    []string
	triggers  map[string][]string // by table
	functions map[string]string   // body by name
}

var (
	tableRE    = regexp.MustCompile(`(?i)\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)`)
	triggerRE  = regexp.MustCompile(`(?is)\bCREATE\s+TRIGGER\s+(\w+)\s.*?\sON\s+(\w+)`)
	functionRE = regexp.MustCompile(`(?is)\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(.*?\bAS\s+\$\$(.*?)\$\$`)
)

// migrations returns, for the migration sets of the catalog and the log, what they create and
// their versions.
func migrations() (expectedSchema, map[string][]int64, error) {
	want := expectedSchema{triggers: map[string][]string{}, functions: map[string]string{}}
	versions := map[string][]int64{}
	for _, set := range []struct {
		table string
		fsys  fs.FS
	}{
		{catalog.VersionTable, catalog.Migrations},
		{merklelog.VersionTable, merklelog.Migrations},
	} {
		ms, err := pgmigrate.Load(set.fsys)
		if err != nil {
			return want, nil, err
		}
		for _, m := range ms {
			versions[set.table] = append(versions[set.table], m.Version)
			for _, g := range tableRE.FindAllStringSubmatch(m.SQL, -1) {
				want.tables = append(want.tables, g[1])
			}
			for _, g := range triggerRE.FindAllStringSubmatch(m.SQL, -1) {
				want.triggers[g[2]] = append(want.triggers[g[2]], g[1])
			}
			for _, g := range functionRE.FindAllStringSubmatch(m.SQL, -1) {
				want.functions[g[1]] = g[2]
			}
		}
	}
	return want, versions, nil
}

// schema checks the migrations' versions (a schema behind or ahead of this audit's code is an
// error: the audit would read it wrongly) and names whatever of the schema is not as they made it.
func (a *auditor) schema(ctx context.Context) error {
	want, versions, err := migrations()
	if err != nil {
		return fmt.Errorf("audit: migrations: %w", err)
	}
	for table, vs := range versions {
		applied, err := pgmigrate.Applied(ctx, a.cfg.Pool, table)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if !slices.Equal(applied, vs) {
			return fmt.Errorf("audit: the schema has the migrations %v of %s, this audit reads %v: "+
				"run the pecarchive that wrote it, or migrate it (pecarchive migrate) first", applied, table, vs)
		}
	}
	bad := func(format string, args ...any) {
		a.add(Finding{Kind: SchemaAltered, LeafIndex: -1, Detail: fmt.Sprintf(format, args...)})
	}
	var b pgx.Batch
	// Functions are named with their schema, pg_catalog, so that none of the schema can stand in
	// for them in this check.
	b.Queue(`SELECT c.relname::text, c.relkind::text, c.relrowsecurity OR c.relforcerowsecurity,
			(SELECT pg_catalog.count(*) FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid),
			(SELECT pg_catalog.count(*) FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid),
			(SELECT coalesce(pg_catalog.array_agg(t.tgname::text || ' ' || t.tgenabled::text ORDER BY t.tgname), '{}')
				FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
			(SELECT coalesce(pg_catalog.array_agg(at.attname::text ORDER BY at.attnum), '{}') FROM pg_catalog.pg_attribute at
				WHERE at.attrelid = c.oid AND at.attnum > 0 AND NOT at.attisdropped AND at.attcollation NOT IN (0, 100))
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = pg_catalog.current_schema() AND c.relname::text = ANY($1::text[])`, want.tables).Query(func(rows pgx.Rows) error {
		found := map[string]bool{}
		var (
			name, kind        string
			security          bool
			rules, policies   int64
			triggers, collate []string
		)
		_, err := pgx.ForEachRow(rows, []any{&name, &kind, &security, &rules, &policies, &triggers, &collate}, func() error {
			found[name] = true
			if kind != "r" {
				bad("%s is not a plain table (pg_class.relkind %q): a view or another relation stands in its place", name, kind)
			}
			if security || policies > 0 {
				bad("%s has row security on or %d policies: they can show the audit other rows than the services", name, policies)
			}
			if rules > 0 {
				bad("%s has %d rules: they can rewrite what is read or written", name, rules)
			}
			if len(collate) > 0 {
				bad("%s: columns %s have a collation of their own, not the database's", name, strings.Join(collate, ", "))
			}
			have := map[string]bool{}
			for _, t := range triggers {
				tg, enabled, _ := strings.Cut(t, " ")
				have[tg] = true
				switch {
				case !slices.Contains(want.triggers[name], tg):
					bad("%s has the trigger %s, which no migration makes", name, tg)
				case enabled != "O":
					bad("%s: its trigger %s is disabled or fires otherwise than the migration made it (pg_trigger.tgenabled %q)", name, tg, enabled)
				}
			}
			for _, tg := range want.triggers[name] {
				if !have[tg] {
					bad("%s: its trigger %s is gone", name, tg)
				}
			}
			return nil
		})
		for _, t := range want.tables {
			if err == nil && !found[t] {
				bad("the table %s is missing from the schema", t)
			}
		}
		return err
	})
	b.Queue(`SELECT n.nspname::text, p.proname::text, pg_catalog.pg_get_function_identity_arguments(p.oid), p.prosrc
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = ANY(pg_catalog.current_schemas(false)) AND n.nspname <> 'pg_catalog'
		ORDER BY 1, 2, 3`).Query(func(rows pgx.Rows) error {
		var nsp, name, args, src string
		_, err := pgx.ForEachRow(rows, []any{&nsp, &name, &args, &src}, func() error {
			body, ok := want.functions[name]
			switch {
			case !ok:
				bad("the function %s.%s(%s) is none of the migrations': it can take the place of a built-in one in the statements of the archive and the audit", nsp, name, args)
			case src != body:
				bad("the function %s.%s(%s) is not the migrations' (its body was replaced)", nsp, name, args)
			}
			return nil
		})
		return err
	})
	b.Queue(`SELECT n.nspname::text, o.oprname::text, pg_catalog.format_type(o.oprleft, NULL), pg_catalog.format_type(o.oprright, NULL)
		FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
		WHERE n.nspname = ANY(pg_catalog.current_schemas(false)) AND n.nspname <> 'pg_catalog' ORDER BY 1, 2`).Query(func(rows pgx.Rows) error {
		var nsp, name, left, right string
		_, err := pgx.ForEachRow(rows, []any{&nsp, &name, &left, &right}, func() error {
			bad("the operator %s.%s (%s, %s) is none of the migrations': it can take the place of a built-in one", nsp, name, left, right)
			return nil
		})
		return err
	})
	if err := a.cfg.Pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("audit: schema: %w", err)
	}
	return nil
}
