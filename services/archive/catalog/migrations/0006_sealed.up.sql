-- What the log's leaves cover beyond the catalog/v1 digest, and where S3 keeps the bytes.
--
-- message_sources.leaf_index: a source recorded after a message's first (the same bytes found
-- again elsewhere) has a log leaf of its own ("source" leaf, catalog/source/v1 digest); the
-- first source is covered by its message's leaf (catalog/v2 digest). NULL for a first source and
-- for every source recorded before this migration (their messages have catalog/v1 leaves).
ALTER TABLE message_sources ADD COLUMN leaf_index bigint CHECK (leaf_index >= 0);
CREATE UNIQUE INDEX message_sources_leaf_idx ON message_sources (leaf_index) WHERE leaf_index IS NOT NULL;

-- messages.blob_version: the version of the blob-store object that holds the message's bytes as
-- the archive wrote it (an S3 version ID), '' when the store keeps no versions or the message
-- has no blob of its own (contained_in). Like contained_in it says where the bytes are, not what
-- they are: outside the evidence digest; reads and the audit use it and re-hash what they read.
ALTER TABLE messages ADD COLUMN blob_version text NOT NULL DEFAULT '';

-- Rows that are only ever inserted: every one is derived from, or sealed by, the log (see
-- SCHEMA.md) and the audit compares them all, but an UPDATE, DELETE or TRUNCATE by anything but
-- a migration is refused outright. (deliveries is re-derived in place by every commit.)
CREATE FUNCTION catalog_refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
        MESSAGE = format('catalog: %s on %s refused: its rows are only ever inserted', TG_OP, TG_TABLE_NAME);
END $$;
CREATE TRIGGER message_sources_written_once BEFORE UPDATE OR DELETE ON message_sources
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_rewrite();
CREATE TRIGGER message_sources_no_truncate BEFORE TRUNCATE ON message_sources
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_rewrite();
CREATE TRIGGER message_recipients_written_once BEFORE UPDATE OR DELETE ON message_recipients
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_rewrite();
CREATE TRIGGER message_recipients_no_truncate BEFORE TRUNCATE ON message_recipients
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_rewrite();
CREATE TRIGGER message_links_written_once BEFORE UPDATE OR DELETE ON message_links
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_rewrite();
CREATE TRIGGER message_links_no_truncate BEFORE TRUNCATE ON message_links
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_rewrite();
CREATE TRIGGER delivery_events_written_once BEFORE UPDATE OR DELETE ON delivery_events
    FOR EACH ROW EXECUTE FUNCTION catalog_refuse_rewrite();
CREATE TRIGGER delivery_events_no_truncate BEFORE TRUNCATE ON delivery_events
    FOR EACH STATEMENT EXECUTE FUNCTION catalog_refuse_rewrite();
