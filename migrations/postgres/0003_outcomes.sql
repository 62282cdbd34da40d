-- Outbox of final outcomes to deliver to the submitting channel. A row is written in
-- the same transaction as the transition that ended the workflow, so no outcome is
-- lost and none is announced before it is committed.
CREATE TABLE outcomes (
    workflow_id     UUID PRIMARY KEY,
    channel         TEXT NOT NULL,
    state           TEXT NOT NULL,
    reason_code     TEXT,
    at              BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    -- When a deliverer may next try; NULL once delivered or given up.
    next_attempt_at BIGINT,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX outcomes_due ON outcomes (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
