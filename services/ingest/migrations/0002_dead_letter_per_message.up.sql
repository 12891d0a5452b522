-- A dead letter is one message at one (mailbox, folder, UIDVALIDITY, UID). A server that
-- renumbers a folder under the same UIDVALIDITY (ingest fetches it again as a new epoch) can put
-- another message at a UID that already has a dead letter; keyed without the SHA-256, the
-- second refusal was dropped. Replays of the same message still find their row.
ALTER TABLE ingest_dead_letters DROP CONSTRAINT ingest_dead_letters_mailbox_folder_uid_validity_uid_key;
ALTER TABLE ingest_dead_letters ADD UNIQUE (mailbox, folder, uid_validity, uid, sha256);
