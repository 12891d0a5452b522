-- Ingest's own state, in the same database as the catalog (its own version table,
-- ingest_schema_version). See services/ingest/state.go.

-- One cursor per (mailbox, folder): the folder's UIDVALIDITY and the highest UID such that the
-- archive acknowledged every message of the folder up to it.
CREATE TABLE ingest_cursors (
    mailbox      text        NOT NULL,
    folder       text        NOT NULL,
    uid_validity bigint      NOT NULL CHECK (uid_validity BETWEEN 1 AND 4294967295),
    uid          bigint      NOT NULL CHECK (uid BETWEEN 0 AND 4294967295),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox, folder)
);

-- One lease per mailbox: the replica pulling it until expires_at. token grows at every
-- acquisition; writes of a replica are fenced by (holder, token) and expiry.
CREATE TABLE ingest_leases (
    mailbox     text        PRIMARY KEY,
    holder      text        NOT NULL,
    token       bigint      NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- Messages the archive refused for good (over its size limit, ...): the folder went on.
CREATE TABLE ingest_dead_letters (
    id            bigserial   PRIMARY KEY,
    mailbox       text        NOT NULL,
    folder        text        NOT NULL,
    uid_validity  bigint      NOT NULL,
    uid           bigint      NOT NULL,
    internal_date timestamptz,
    sha256        bytea       NOT NULL CHECK (length(sha256) = 32),
    size          bigint      NOT NULL,
    reason        text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mailbox, folder, uid_validity, uid)
);

-- Every UIDVALIDITY change seen: the folder was fetched again from its start.
CREATE TABLE ingest_uidvalidity_events (
    id               bigserial   PRIMARY KEY,
    mailbox          text        NOT NULL,
    folder           text        NOT NULL,
    old_uid_validity bigint      NOT NULL,
    old_uid          bigint      NOT NULL,
    new_uid_validity bigint      NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
