-- The built-in CRM store. Portable SQL: the same file runs on SQLite and PostgreSQL.
CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    fields TEXT NOT NULL DEFAULT '{}',
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    erased INTEGER NOT NULL DEFAULT 0
);

-- kind: "phone" (shared by voice and SMS), "email" or "chat"; address normalized.
CREATE TABLE identities (
    kind TEXT NOT NULL,
    address TEXT NOT NULL,
    contact_id TEXT NOT NULL REFERENCES contacts (id),
    PRIMARY KEY (kind, address)
);
CREATE INDEX identities_contact ON identities (contact_id);

CREATE TABLE interactions (
    id TEXT PRIMARY KEY,
    contact_id TEXT,
    channel TEXT NOT NULL DEFAULT '',
    customer_address TEXT NOT NULL DEFAULT '',
    -- The customer's normalized identity, so interactions logged before their contact existed
    -- are linked when it is created.
    identity_kind TEXT NOT NULL DEFAULT '',
    identity TEXT NOT NULL DEFAULT '',
    queue TEXT NOT NULL DEFAULT '',
    agent_id TEXT NOT NULL DEFAULT '',
    started_ms BIGINT NOT NULL DEFAULT 0,
    ended_ms BIGINT NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL DEFAULT '',
    disposition TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT ''
);
CREATE INDEX interactions_contact ON interactions (contact_id, started_ms);
CREATE INDEX interactions_identity ON interactions (identity_kind, identity);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    interaction_id TEXT NOT NULL DEFAULT '',
    type TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    queue TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}',
    received_ms BIGINT NOT NULL,
    -- Arrival order.
    received_seq BIGINT NOT NULL
);
CREATE INDEX events_interaction ON events (interaction_id, received_seq);
CREATE INDEX events_arrival ON events (received_seq);

CREATE TABLE messages (
    interaction_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    author TEXT NOT NULL,
    agent_id TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (interaction_id, seq)
);
