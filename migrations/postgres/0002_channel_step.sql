-- The submitting channel (a channel sees only its own workflows) and the id of the
-- current step (operations filter by it).
ALTER TABLE workflows ADD COLUMN channel TEXT;
ALTER TABLE workflows ADD COLUMN current_step TEXT;
CREATE INDEX workflows_channel ON workflows (channel, state_since);
