-- When the personal data of a finished workflow was erased (input and step outputs).
ALTER TABLE workflows ADD COLUMN purged_at BIGINT;
CREATE INDEX workflows_purgeable ON workflows (state_since) WHERE purged_at IS NULL;
