-- Engine tables. Timestamps are Unix epoch milliseconds (UTC), as on SQLite, so both
-- stores share one codec.

CREATE TABLE definitions (
    hash       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    content    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE workflows (
    id                 UUID PRIMARY KEY,
    definition_name    TEXT NOT NULL,
    definition_version BIGINT NOT NULL,
    definition_hash    TEXT NOT NULL REFERENCES definitions (hash),
    start_key          TEXT NOT NULL,
    subject            TEXT,
    -- Equals subject while the workflow is open, NULL once it ends: the unique index
    -- below is what allows at most one open workflow per subject.
    open_subject       TEXT,
    input              JSONB NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('running', 'waiting', 'compensating', 'completed', 'compensated', 'rejected', 'cancelled', 'needs_operator')),
    cursor             BIGINT NOT NULL,
    ending             TEXT CHECK (ending IN ('compensated', 'rejected', 'cancelled')),
    steps              JSONB NOT NULL,
    reason_code        TEXT,
    reason_message     TEXT,
    next_run_at        BIGINT,
    state_since        BIGINT NOT NULL,
    lease_owner        TEXT,
    lease_expires_at   BIGINT,
    fence              BIGINT NOT NULL DEFAULT 0,
    history_len        BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE UNIQUE INDEX workflows_start_key ON workflows (start_key);
CREATE UNIQUE INDEX workflows_open_subject ON workflows (open_subject);
CREATE INDEX workflows_due ON workflows (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX workflows_state ON workflows (state, state_since);

CREATE TABLE history (
    workflow_id UUID NOT NULL,
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    step        TEXT,
    attempt     BIGINT,
    error_code  TEXT,
    message     TEXT,
    actor       TEXT,
    reason      TEXT,
    data        JSONB,
    PRIMARY KEY (workflow_id, seq)
);

CREATE FUNCTION history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'history is append-only';
END;
$$;

CREATE TRIGGER history_no_update BEFORE UPDATE OR DELETE ON history
    FOR EACH ROW EXECUTE FUNCTION history_append_only();
