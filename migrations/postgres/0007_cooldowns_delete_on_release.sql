-- The expiry job deletes a cooldown once its six months have passed, so no row is ever
-- "released but kept": the column that would have marked it goes.
DROP INDEX cooldowns_due;
ALTER TABLE cooldowns DROP COLUMN released_at;
CREATE INDEX cooldowns_due ON cooldowns (release_at);
