-- merklelog: an append-only RFC 6962 Merkle tree (see package merklelog).
-- Tables are unqualified: they live in the connection's current schema (search_path).

-- One row per leaf, index 0, 1, 2, ... without gaps. hash = SHA-256(0x00 || data) is the level-0
-- node of the tree.
CREATE TABLE IF NOT EXISTS merklelog_leaf (
    idx  bigint PRIMARY KEY CHECK (idx >= 0),
    data bytea  NOT NULL,
    hash bytea  NOT NULL CHECK (octet_length(hash) = 32)
);

-- Every complete (perfect) subtree of level >= 1: the node at (level, idx) covers leaves
-- [idx * 2^level, (idx + 1) * 2^level). Rows are written once, when the subtree's last leaf is
-- appended, and never change.
CREATE TABLE IF NOT EXISTS merklelog_node (
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 63),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    hash  bytea    NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- The sequencer state, a single row: the tree size and its compact range, i.e. the hashes of the
-- perfect subtrees covering [0, size), largest first, concatenated (32 bytes each).
CREATE TABLE IF NOT EXISTS merklelog_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    size        bigint  NOT NULL CHECK (size >= 0),
    compact     bytea   NOT NULL CHECK (octet_length(compact) % 32 = 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO merklelog_state (id, size, compact) VALUES (true, 0, '') ON CONFLICT (id) DO NOTHING;

-- Signed checkpoints (C2SP tlog-checkpoint signed notes), one per published size.
CREATE TABLE IF NOT EXISTS merklelog_checkpoint (
    size       bigint PRIMARY KEY CHECK (size >= 0),
    root       bytea  NOT NULL CHECK (octet_length(root) = 32),
    signed     bytea  NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
