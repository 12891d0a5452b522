-- References checked once per statement instead of once per row.
--
-- The row-level foreign keys of 0001 ran one look-up per referencing row, and each look-up
-- locked the referenced messages row (FOR KEY SHARE, which writes to its heap page): about a
-- fifth of the server's CPU on the write path. The same guarantee is kept more cheaply:
--   * every INSERT (and UPDATE) into a referencing table runs one statement-level check over
--     all its new rows (transition tables), failing with foreign_key_violation (23503) as a
--     foreign key would;
--   * a referenced row can never go away or change its key: messages, cert_chains and
--     trust_anchor_sets refuse DELETE, TRUNCATE and updates of sha256 (the catalog only ever
--     inserts them), which is what the foreign keys' row locks protected against.

DO $$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT c.conrelid::regclass AS tbl, c.conname
        FROM pg_constraint c
        WHERE c.contype = 'f'
          AND c.connamespace = current_schema()::regnamespace
          AND c.conrelid::regclass::text IN ('messages', 'message_recipients', 'message_sources',
                                             'message_links', 'delivery_events', 'deliveries')
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.tbl, r.conname);
    END LOOP;
END $$;

-- Written once: referenced rows are never deleted, truncated or re-keyed.
CREATE FUNCTION catalog_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
        MESSAGE = format('catalog: %s on %s refused: its rows are written once and referenced', TG_OP, TG_TABLE_NAME);
END $$;

CREATE TRIGGER messages_written_once BEFORE DELETE OR UPDATE OF sha256 ON messages
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_change();
CREATE TRIGGER messages_no_truncate BEFORE TRUNCATE ON messages
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_change();
CREATE TRIGGER cert_chains_written_once BEFORE DELETE OR UPDATE OF sha256 ON cert_chains
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_change();
CREATE TRIGGER cert_chains_no_truncate BEFORE TRUNCATE ON cert_chains
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_change();
CREATE TRIGGER trust_anchor_sets_written_once BEFORE DELETE OR UPDATE OF sha256 ON trust_anchor_sets
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_change();
CREATE TRIGGER trust_anchor_sets_no_truncate BEFORE TRUNCATE ON trust_anchor_sets
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_change();

-- The checks. Each raises on the first new row whose reference does not exist. One function per
-- referencing column set, written out: a generic one would need dynamic SQL (EXECUTE), planned
-- again on every statement. OFFSET 0 keeps
-- each NOT EXISTS a per-row index probe: without it the planner may turn the check into a hash
-- anti-join over the whole referenced table, and PL/pgSQL keeps that plan as the table grows.
CREATE FUNCTION catalog_missing_ref(tbl text, col text, sha bytea) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
        MESSAGE = format('catalog: %s.%s %s refers to a row that does not exist', tbl, col, encode(sha, 'hex'));
END $$;

CREATE FUNCTION messages_refs() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE bad bytea;
BEGIN
    SELECT n.chain_sha256 INTO bad FROM new_rows n
    WHERE n.chain_sha256 IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM cert_chains c WHERE c.sha256 = n.chain_sha256 OFFSET 0) LIMIT 1;
    IF FOUND THEN PERFORM catalog_missing_ref('messages', 'chain_sha256', bad); END IF;
    SELECT n.anchors_sha256 INTO bad FROM new_rows n
    WHERE n.anchors_sha256 IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM trust_anchor_sets t WHERE t.sha256 = n.anchors_sha256 OFFSET 0) LIMIT 1;
    IF FOUND THEN PERFORM catalog_missing_ref('messages', 'anchors_sha256', bad); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER messages_refs_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_refs();
CREATE TRIGGER messages_refs_update AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION messages_refs();

-- message_recipients and message_sources refer to one message each, by sha256.
CREATE FUNCTION message_recipients_refs() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE bad bytea;
BEGIN
    SELECT n.sha256 INTO bad FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = n.sha256 OFFSET 0) LIMIT 1;
    IF FOUND THEN PERFORM catalog_missing_ref(TG_TABLE_NAME, 'sha256', bad); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER message_recipients_refs_insert AFTER INSERT ON message_recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_recipients_refs();
CREATE TRIGGER message_recipients_refs_update AFTER UPDATE ON message_recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_recipients_refs();
CREATE TRIGGER message_sources_refs_insert AFTER INSERT ON message_sources
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_recipients_refs();
CREATE TRIGGER message_sources_refs_update AFTER UPDATE ON message_sources
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_recipients_refs();

CREATE FUNCTION delivery_events_refs() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE bad bytea;
BEGIN
    SELECT n.receipt_sha256 INTO bad FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = n.receipt_sha256 OFFSET 0) LIMIT 1;
    IF FOUND THEN PERFORM catalog_missing_ref('delivery_events', 'receipt_sha256', bad); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER delivery_events_refs_insert AFTER INSERT ON delivery_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_events_refs();
CREATE TRIGGER delivery_events_refs_update AFTER UPDATE ON delivery_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_events_refs();

CREATE FUNCTION message_links_refs() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE bad bytea;
BEGIN
    SELECT s INTO bad FROM new_rows n, LATERAL (VALUES (n.referrer_sha256), (n.original_sha256)) v(s)
    WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = v.s OFFSET 0) LIMIT 1;
    IF FOUND THEN PERFORM catalog_missing_ref('message_links', 'referrer_sha256/original_sha256', bad); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER message_links_refs_insert AFTER INSERT ON message_links
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_links_refs();
CREATE TRIGGER message_links_refs_update AFTER UPDATE ON message_links
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION message_links_refs();

CREATE FUNCTION deliveries_refs() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE bad bytea;
BEGIN
    SELECT s INTO bad FROM new_rows n,
        LATERAL (VALUES (n.original_sha256), (n.acceptance_sha256), (n.delivery_sha256),
                        (n.nondelivery_sha256), (n.warning_sha256)) v(s)
    WHERE v.s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = v.s OFFSET 0) LIMIT 1;
    IF FOUND THEN PERFORM catalog_missing_ref('deliveries', 'original/acceptance/delivery/nondelivery/warning_sha256', bad); END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_refs_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deliveries_refs();
CREATE TRIGGER deliveries_refs_update AFTER UPDATE ON deliveries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deliveries_refs();
