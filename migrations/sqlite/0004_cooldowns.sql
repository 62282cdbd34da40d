-- The phone cooldown registry. It stores a keyed hash of the phone (HMAC-SHA256, see
-- crates/cooldown), never the phone. With several key versions, one phone can appear
-- once per version.
CREATE TABLE cooldowns (
    scope       TEXT NOT NULL CHECK (scope IN ('skyjoy', 'wallet')),
    phone_hash  TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    closed_at   INTEGER NOT NULL,
    release_at  INTEGER NOT NULL,
    -- Set by the expiry job once release_at has passed.
    released_at INTEGER,
    workflow_id BLOB,
    PRIMARY KEY (scope, key_version, phone_hash)
);
CREATE INDEX cooldowns_due ON cooldowns (release_at) WHERE released_at IS NULL;

-- Leases that make a scheduled job run on one replica at a time.
CREATE TABLE job_locks (
    job        TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
