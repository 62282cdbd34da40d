-- When the stuck-workflow sweep flagged a workflow as in its current state for longer
-- than its threshold; a commit that moves the workflow to a new state clears it.
ALTER TABLE workflows ADD COLUMN stuck_at BIGINT;
CREATE INDEX workflows_stuck ON workflows (state, stuck_at) WHERE stuck_at IS NOT NULL;
