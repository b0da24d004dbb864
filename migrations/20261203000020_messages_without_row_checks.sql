-- Messages no longer check their sender and conversation row by row (issue 14).
--
-- The two foreign keys cost PostgreSQL a lookup and a row lock per inserted message:
-- measured in W1, half of the writer's batch insert (at the maximum, 5.6-7.1 ms a batch
-- with them against 2.9-3.1 ms without, and 12-14 µs less of PostgreSQL's CPU per
-- message). They guarded nothing the writer does not already hold in the same
-- transaction: it stores a message only after reading, in that transaction, that the
-- conversation exists and that the sender is a member of it (a membership row keeps
-- its own foreign keys to both), and it locks the conversation's row to number it.
--
-- What the keys also did, cascade a deleted user or conversation to its messages,
-- never happens: an account is erased in place (its id stays, under a placeholder
-- name, so kept messages still name an author), and a conversation outlives its
-- group. That is now a rule the database keeps, so a message can never name a row
-- that is gone: deleting a user or a conversation is refused.

ALTER TABLE messages
    DROP CONSTRAINT messages_sender_id_fkey,
    DROP CONSTRAINT messages_conversation_id_fkey;

CREATE FUNCTION refuse_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted: messages refer to them', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'an account is erased in place (DELETE /api/v1/me), and deactivated by goim admin deactivate';
END;
$$;

CREATE TRIGGER users_never_deleted BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER conversations_never_deleted BEFORE DELETE ON conversations
    FOR EACH ROW EXECUTE FUNCTION refuse_delete();
-- TRUNCATE ... CASCADE would otherwise empty them past the row triggers, and no longer
-- reach the messages.
CREATE TRIGGER users_never_truncated BEFORE TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
CREATE TRIGGER conversations_never_truncated BEFORE TRUNCATE ON conversations
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_delete();
