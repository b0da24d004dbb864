-- The retention sweep (src/retention.rs) finds messages past GOIM_RETENTION_DAYS by
-- created_at. Messages arrive in time order, so a BRIN index (a few pages, almost free
-- to maintain on insert) narrows the scan to the oldest block ranges; a B-tree would
-- add a full index entry to every send for a feature that is off by default.
CREATE INDEX messages_created_at_brin ON messages USING brin (created_at);
