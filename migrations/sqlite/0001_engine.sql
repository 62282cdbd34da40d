-- Engine tables. Timestamps are Unix epoch milliseconds (UTC).

CREATE TABLE definitions (
    hash       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    content    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE workflows (
    id                 BLOB PRIMARY KEY,
    definition_name    TEXT NOT NULL,
    definition_version INTEGER NOT NULL,
    definition_hash    TEXT NOT NULL REFERENCES definitions (hash),
    start_key          TEXT NOT NULL,
    subject            TEXT,
    -- Equals subject while the workflow is open, NULL once it ends: the unique index
    -- below is what allows at most one open workflow per subject.
    open_subject       TEXT,
    input              TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('running', 'waiting', 'compensating', 'completed', 'compensated', 'rejected', 'cancelled', 'needs_operator')),
    cursor             INTEGER NOT NULL,
    ending             TEXT CHECK (ending IN ('compensated', 'rejected', 'cancelled')),
    steps              TEXT NOT NULL,
    reason_code        TEXT,
    reason_message     TEXT,
    next_run_at        INTEGER,
    state_since        INTEGER NOT NULL,
    lease_owner        TEXT,
    lease_expires_at   INTEGER,
    fence              INTEGER NOT NULL DEFAULT 0,
    history_len        INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE UNIQUE INDEX workflows_start_key ON workflows (start_key);
CREATE UNIQUE INDEX workflows_open_subject ON workflows (open_subject);
CREATE INDEX workflows_due ON workflows (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX workflows_state ON workflows (state, state_since);

CREATE TABLE history (
    workflow_id BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    step        TEXT,
    attempt     INTEGER,
    error_code  TEXT,
    message     TEXT,
    actor       TEXT,
    reason      TEXT,
    data        TEXT,
    PRIMARY KEY (workflow_id, seq)
) WITHOUT ROWID;

CREATE TRIGGER history_no_update BEFORE UPDATE ON history
BEGIN
    SELECT RAISE(ABORT, 'history is append-only');
END;

CREATE TRIGGER history_no_delete BEFORE DELETE ON history
BEGIN
    SELECT RAISE(ABORT, 'history is append-only');
END;
