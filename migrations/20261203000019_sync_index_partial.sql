-- The sync index only for statements that name a version (issue 14).
--
-- The writer's idempotency lookup, (conversation_id, sender_id, client_msg_id), could
-- also be served by (conversation_id, version) with the other two columns as a filter,
-- and on a new server (empty tables, no statistics) PostgreSQL cannot tell the two
-- apart. The writer keeps the plan of its first batch, so every send then read every
-- earlier message of its conversation (found in W1: 227 rows read per message, and
-- growing). As a partial index on `version IS NOT NULL` (every row), the sync index
-- serves exactly the statements with a condition on `version` (a `version > $n` implies
-- the predicate), and the idempotency lookup can only use its own unique index.
DROP INDEX messages_conversation_version;
CREATE INDEX messages_conversation_version ON messages (conversation_id, version) WHERE version IS NOT NULL;
