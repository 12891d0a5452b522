-- catalog: the archive's index of stored messages, their sources, correlation and delivery state
-- (see package catalog and SCHEMA.md). Tables are unqualified: they live in the connection's
-- current schema (search_path). SHA-256 values are 32-byte bytea; text is never NULL ('' when
-- unknown); times are NULL when unknown.

-- Certificate chains of signers, stored once by hash and referenced by the verdicts.
-- sha256 = SHA-256 of the concatenated DER certificates, in chain order (signer first).
CREATE TABLE cert_chains (
    sha256     bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    certs      bytea[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Trust-anchor sets a verification used, stored once by hash. sha256 = SHA-256 of the
-- concatenated DER certificates sorted by their bytes (pec/smime TrustStore.ID).
CREATE TABLE trust_anchor_sets (
    sha256     bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    label      text NOT NULL DEFAULT '',
    certs      bytea[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per distinct raw message (any RFC 5322 object we received), keyed by the SHA-256 of its
-- exact bytes. Written once, in the transaction that appends its log leaf; never updated.
CREATE TABLE messages (
    sha256            bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    size              bigint NOT NULL CHECK (size > 0),
    kind              text NOT NULL,
    message_id        text NOT NULL DEFAULT '',   -- own Message-ID (an envelope's is the PEC id)
    pec_id            text NOT NULL DEFAULT '',   -- daticert identificativo
    orig_msgid        text NOT NULL DEFAULT '',   -- daticert msgid (the original's Message-ID)
    x_riferimento     text NOT NULL DEFAULT '',   -- X-Riferimento-Message-ID
    ref_msgid         text NOT NULL DEFAULT '',   -- correlation key: the original's Message-ID (catalog.RefMsgID)
    sender            text NOT NULL DEFAULT '',   -- daticert mittente, else From
    from_addr         text NOT NULL DEFAULT '',   -- From address
    recipients        text[] NOT NULL DEFAULT '{}', -- daticert destinatari, else To + Cc
    recipient_types   text[] NOT NULL DEFAULT '{}', -- certificato|esterno per recipient, '' unknown
    subject           text NOT NULL DEFAULT '',
    provider          text NOT NULL DEFAULT '',   -- daticert gestore-emittente
    daticert_time     timestamptz,
    daticert_zone     integer,                    -- seconds east of UTC of the daticert zona
    header_date       timestamptz,
    receipt_type      text NOT NULL DEFAULT '',   -- completa|breve|sintetica
    errore            text NOT NULL DEFAULT '',
    errore_esteso     text NOT NULL DEFAULT '',
    consegna          text NOT NULL DEFAULT '',
    sig_present       boolean NOT NULL DEFAULT false,
    sig_valid         boolean NOT NULL DEFAULT false,
    sig_trusted       boolean NOT NULL DEFAULT false,
    digest_alg        text NOT NULL DEFAULT '',
    signer            text NOT NULL DEFAULT '',
    signer_email      text NOT NULL DEFAULT '',
    index_provider    text NOT NULL DEFAULT '',   -- provider-index providerName of the signer
    signed_at         timestamptz,
    verified_at       timestamptz,                -- the time the verification was made as of
    reasons           text[] NOT NULL DEFAULT '{}', -- verification reasons (pec/smime)
    reason_details    text[] NOT NULL DEFAULT '{}', -- human-readable explanations
    problems          text[] NOT NULL DEFAULT '{}', -- parse problems
    chain_sha256      bytea REFERENCES cert_chains (sha256),
    anchors_sha256    bytea REFERENCES trust_anchor_sets (sha256),
    postacert_sha256  bytea CHECK (octet_length(postacert_sha256) = 32),
    leaf_index        bigint NOT NULL UNIQUE CHECK (leaf_index >= 0),
    received_at       timestamptz NOT NULL
);
CREATE INDEX messages_message_id_idx ON messages (message_id) WHERE message_id <> '';
CREATE INDEX messages_ref_msgid_idx ON messages (ref_msgid) WHERE ref_msgid <> '';
CREATE INDEX messages_pec_id_idx ON messages (pec_id) WHERE pec_id <> '';
CREATE INDEX messages_sender_idx ON messages (sender, received_at);
CREATE INDEX messages_received_at_idx ON messages (received_at, sha256);
CREATE INDEX messages_postacert_idx ON messages (postacert_sha256) WHERE postacert_sha256 IS NOT NULL;
CREATE INDEX messages_daticert_time_idx ON messages (daticert_time) WHERE daticert_time IS NOT NULL;

-- One row per (message, recipient): lookups by recipient in received order (keyset paging)
-- without relying on a GIN index and the planner's guess of its selectivity.
CREATE TABLE message_recipients (
    recipient   text NOT NULL,
    received_at timestamptz NOT NULL,
    sha256      bytea NOT NULL REFERENCES messages (sha256),
    PRIMARY KEY (recipient, received_at, sha256)
);

-- Where each message was found. A message has one row per distinct source; storing the same
-- bytes again from a new place adds a row, from the same place adds nothing.
-- parent_sha256 is set for a message extracted from another (the postacert.eml of a complete
-- delivery receipt), with path naming the part.
CREATE TABLE message_sources (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256         bytea NOT NULL REFERENCES messages (sha256),
    mailbox        text NOT NULL DEFAULT '',
    folder         text NOT NULL DEFAULT '',
    uidvalidity    bigint NOT NULL DEFAULT 0,
    uid            bigint NOT NULL DEFAULT 0,
    internaldate   timestamptz,
    path           text NOT NULL DEFAULT '',
    parent_sha256  bytea NOT NULL DEFAULT ''::bytea,
    first_seen     timestamptz NOT NULL,
    UNIQUE (sha256, mailbox, folder, uidvalidity, uid, path, parent_sha256)
);
CREATE INDEX message_sources_imap_idx ON message_sources (mailbox, folder, uidvalidity, uid);

-- Receipt/envelope -> original links. via: 'msgid' (the referrer's X-Riferimento-Message-ID or
-- daticert msgid is the original's Message-ID), 'pec-id' (a receipt and the transport envelope
-- share the daticert identificativo), 'postacert' (the original is the postacert.eml carried
-- inside the referrer).
CREATE TABLE message_links (
    referrer_sha256 bytea NOT NULL REFERENCES messages (sha256),
    original_sha256 bytea NOT NULL REFERENCES messages (sha256),
    via             text NOT NULL CHECK (via IN ('msgid', 'pec-id', 'postacert')),
    PRIMARY KEY (referrer_sha256, original_sha256, via)
);
CREATE INDEX message_links_original_idx ON message_links (original_sha256);

-- What each receipt says about one (original msgid, recipient): the input of the delivery state.
-- ok = the receipt's signature is valid and trusted; otherwise problem says why not.
CREATE TABLE delivery_events (
    msgid          text NOT NULL,
    recipient      text NOT NULL,
    receipt_sha256 bytea NOT NULL REFERENCES messages (sha256),
    kind           text NOT NULL,
    ok             boolean NOT NULL,
    problem        text NOT NULL DEFAULT '',
    pec_id         text NOT NULL DEFAULT '',
    sender         text NOT NULL DEFAULT '',
    receipt_type   text NOT NULL DEFAULT '',
    errore         text NOT NULL DEFAULT '',
    errore_esteso  text NOT NULL DEFAULT '',
    event_time     timestamptz,
    PRIMARY KEY (msgid, recipient, receipt_sha256)
);
CREATE INDEX delivery_events_receipt_idx ON delivery_events (receipt_sha256);

-- One row per (original msgid, recipient), derived from delivery_events (and the original's
-- recipients for pending rows) in the transaction that adds a receipt or the original.
CREATE TABLE deliveries (
    msgid              text NOT NULL,
    recipient          text NOT NULL,
    pec_id             text NOT NULL DEFAULT '',
    sender             text NOT NULL DEFAULT '',
    state              text NOT NULL CHECK (state IN ('pending', 'accepted', 'warned', 'not-delivered', 'delivered')),
    receipt_type       text NOT NULL DEFAULT '',
    errore             text NOT NULL DEFAULT '',
    errore_esteso      text NOT NULL DEFAULT '',
    original_sha256    bytea REFERENCES messages (sha256),
    acceptance_sha256  bytea REFERENCES messages (sha256),
    delivery_sha256    bytea REFERENCES messages (sha256),
    nondelivery_sha256 bytea REFERENCES messages (sha256),
    warning_sha256     bytea REFERENCES messages (sha256),
    accepted_at        timestamptz,
    state_at           timestamptz,
    problem            text NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (msgid, recipient)
);
CREATE INDEX deliveries_recipient_idx ON deliveries (recipient, accepted_at);
CREATE INDEX deliveries_sender_idx ON deliveries (sender, accepted_at);
CREATE INDEX deliveries_pec_id_idx ON deliveries (pec_id) WHERE pec_id <> '';
CREATE INDEX deliveries_state_idx ON deliveries (state, updated_at) WHERE state <> 'delivered';
