-- Tombstones left by erasure (db/erasure.rs), so events delivered after it cannot store the
-- personal data again. kind "interaction": id is the interaction id; kind "identity": id is a
-- hash of the identity (never the address itself).
CREATE TABLE erasures (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    erased_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
