-- Tamper evidence: each history entry carries the hash of the previous one
-- (SHA-256 of the previous hash and the entry's canonical form), and the workflow row keeps
-- the latest, so a changed, removed or truncated entry breaks the chain.
ALTER TABLE history ADD COLUMN hash TEXT;
ALTER TABLE workflows ADD COLUMN history_head TEXT;
