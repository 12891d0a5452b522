-- catalog 0007: every read of evidence is recorded. One accesses row per audited read (who,
-- which RPC, what selector, which messages it returned, when), written once by the archive's
-- committer in the same transaction as an "access" leaf of the transparency log whose Extra
-- carries the row's digest (catalog.Access.LeafExtra), so that access history cannot be
-- rewritten without the audit naming it. And the read-only role the query service reads with.

CREATE TABLE accesses (
    leaf_index bigint PRIMARY KEY CHECK (leaf_index >= 0),
    at         timestamptz NOT NULL,              -- when the archive committed the record
    principal  text NOT NULL,                     -- who read (the authenticated caller's name)
    auth       text NOT NULL DEFAULT '',          -- how they authenticated: token, mtls, local
    method     text NOT NULL,                     -- what they called (full gRPC method name)
    selector   text NOT NULL DEFAULT '',          -- what they asked for
    returned   bytea NOT NULL DEFAULT ''::bytea   -- the SHA-256s of the messages the answer carried,
               CHECK (octet_length(returned) % 32 = 0), -- concatenated, in the answer's order
    recorder   text NOT NULL DEFAULT ''           -- the service that recorded it with the archive
);
CREATE INDEX accesses_principal_idx ON accesses (principal, at);

-- Written once: no update, no delete, no truncate (the audit names a row changed all the same).
CREATE TRIGGER accesses_written_once BEFORE DELETE OR UPDATE ON accesses
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_change();
CREATE TRIGGER accesses_no_truncate BEFORE TRUNCATE ON accesses
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_change();

-- pecarchive_query: a role that may read this schema and nothing more (SELECT on its tables,
-- present and future ones created by the migrating role: the log's tables come after this
-- migration). The query service connects with it (SET ROLE, or as a login member of it), so it
-- has no write access in PostgreSQL either. Roles are cluster-wide: creating it is idempotent
-- and tolerates another schema's migration creating it at the same time; a migrating user
-- without CREATEROLE leaves it to the DBA (the grants then apply once it exists and this schema
-- is migrated again by a later version, or by hand).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pecarchive_query') THEN
        BEGIN
            CREATE ROLE pecarchive_query NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'catalog: cannot create role pecarchive_query; create it and grant it SELECT on schema %', current_schema();
        END;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'pecarchive_query') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO pecarchive_query', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO pecarchive_query', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO pecarchive_query', current_schema());
    END IF;
END
$$;
