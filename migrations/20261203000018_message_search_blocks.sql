-- Message search indexes blocks of consecutive messages, off the send path (issue 14).
--
-- A trigram GIN entry per message was more than half of PostgreSQL's work per sent
-- message, and it ran inside the writer's transaction. Now the writer only inserts
-- messages; a background task (src/search_index.rs) joins each conversation's newly
-- committed bodies into blocks of up to 64 messages and indexes the blocks. Trigrams
-- shared by a block's messages are stored once, and the work is batched.
--
-- Search stays exact: a block is a candidate, never an answer. Every candidate message
-- is checked against its current body, and each conversation's messages past
-- `indexed_seq` (not yet in a block) are scanned directly.
--
-- A block's text must never keep what a message no longer says (an edit, a recall, an
-- account's removed messages, the retention sweep): the triggers below rebuild every
-- block holding a changed or deleted message, in the same transaction. Block writes
-- of one conversation take turns on its `message_search_progress` row, so a rebuild
-- never races the indexer reading the old text.
--
-- Blocks hold their text lowercased, and are checked with `LIKE` against the lowercased
-- needle, which is what `ILIKE` does (PostgreSQL lowercases both sides, by the same
-- collation) without lowering every candidate block at every search: at 10 million
-- messages, over one rare word's 986 candidate blocks, 45 ms became 14 ms.

CREATE TABLE message_search_progress (
    conversation_id bigint PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    -- Every message with seq <= this is in a block (or has no text).
    indexed_seq     bigint NOT NULL DEFAULT 0
);

CREATE TABLE message_search_blocks (
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    first_seq       bigint NOT NULL,
    last_seq        bigint NOT NULL,
    -- The blocks' messages' bodies, lowercased, in seq order, one per line.
    lowered_body    text NOT NULL,
    CONSTRAINT message_search_blocks_pkey PRIMARY KEY (conversation_id, first_seq),
    CONSTRAINT message_search_blocks_range CHECK (first_seq <= last_seq)
);

-- The pending list is merged by the indexer right after it inserts (src/search_index.rs).
CREATE INDEX message_search_blocks_trgm ON message_search_blocks
    USING gin (lowered_body gin_trgm_ops) WITH (gin_pending_list_limit = 65536);

-- Every conversation has its progress row from the start, so there is always a row to
-- take turns on.
INSERT INTO message_search_progress (conversation_id) SELECT id FROM conversations;

CREATE FUNCTION message_search_progress_create() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_search_progress (conversation_id) VALUES (NEW.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER conversations_search_progress
    AFTER INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION message_search_progress_create();

-- Rebuilds the blocks holding the given messages from the messages' current text;
-- a block left without text is deleted.
CREATE FUNCTION message_search_rebuild(conversation_ids bigint[], seqs bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- In conversation order, as the writer and the indexer go, and waiting for an
    -- indexer that is writing these conversations' blocks right now.
    PERFORM 1 FROM message_search_progress
      WHERE conversation_id = ANY (conversation_ids)
      ORDER BY conversation_id FOR NO KEY UPDATE;
    WITH changed AS (
        SELECT DISTINCT b.conversation_id, b.first_seq, b.last_seq
          FROM unnest(conversation_ids, seqs) AS c(conversation_id, seq)
          JOIN message_search_blocks b
            ON b.conversation_id = c.conversation_id AND b.first_seq <= c.seq AND b.last_seq >= c.seq
    ), rebuilt AS (
        SELECT ch.conversation_id, ch.first_seq,
               (SELECT lower(string_agg(m.body, E'\n' ORDER BY m.seq)) FROM messages m
                 WHERE m.conversation_id = ch.conversation_id AND m.seq BETWEEN ch.first_seq AND ch.last_seq
                   AND m.deleted_at IS NULL AND m.body IS NOT NULL) AS body
          FROM changed ch
    ), updated AS (
        UPDATE message_search_blocks b SET lowered_body = r.body
          FROM rebuilt r
         WHERE b.conversation_id = r.conversation_id AND b.first_seq = r.first_seq AND r.body IS NOT NULL
    )
    DELETE FROM message_search_blocks b
     USING rebuilt r
     WHERE b.conversation_id = r.conversation_id AND b.first_seq = r.first_seq AND r.body IS NULL;
END;
$$;

CREATE FUNCTION message_search_body_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_search_rebuild(ARRAY[NEW.conversation_id], ARRAY[NEW.seq]);
    RETURN NULL;
END;
$$;

-- Edits, recalls and removals change one message at a time (an account's removal a few
-- hundred): a row trigger, only for rows whose text changed.
CREATE TRIGGER messages_search_body_changed
    AFTER UPDATE OF body, deleted_at ON messages
    FOR EACH ROW
    WHEN (OLD.body IS DISTINCT FROM NEW.body OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION message_search_body_changed();

CREATE FUNCTION message_search_messages_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_search_rebuild(
        (SELECT array_agg(conversation_id) FROM gone), (SELECT array_agg(seq) FROM gone));
    RETURN NULL;
END;
$$;

-- The retention sweep deletes thousands of messages per statement: once per statement.
CREATE TRIGGER messages_search_deleted
    AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION message_search_messages_deleted();

-- Indexes the text of up to `per_conversation` messages past each given conversation's
-- `indexed_seq` (up to `last_seq` as committed), in blocks of up to 64, and moves
-- `indexed_seq` past them. Conversations another transaction is indexing or rebuilding
-- are skipped. Returns how many conversations were indexed, and those still behind.
CREATE FUNCTION message_search_index(conversation_ids bigint[], per_conversation bigint,
                                     OUT indexed bigint, OUT behind bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    due_ids bigint[];
    from_seqs bigint[];
    to_seqs bigint[];
BEGIN
    -- Lock first, in its own statement: the messages are then read with a snapshot
    -- taken after every rebuild of these conversations has committed.
    SELECT array_agg(due.conversation_id), array_agg(due.from_seq), array_agg(due.to_seq),
           count(*), COALESCE(array_agg(due.conversation_id) FILTER (WHERE due.to_seq < due.last_seq), '{}')
      INTO due_ids, from_seqs, to_seqs, indexed, behind
      FROM (SELECT p.conversation_id, p.indexed_seq AS from_seq, c.last_seq,
                   LEAST(c.last_seq, p.indexed_seq + per_conversation) AS to_seq
              FROM message_search_progress p JOIN conversations c ON c.id = p.conversation_id
             WHERE p.conversation_id = ANY (conversation_ids) AND c.last_seq > p.indexed_seq
             ORDER BY p.conversation_id
               FOR NO KEY UPDATE OF p SKIP LOCKED) AS due;
    INSERT INTO message_search_blocks (conversation_id, first_seq, last_seq, lowered_body)
    SELECT m.conversation_id, min(m.seq), max(m.seq), lower(string_agg(m.body, E'\n' ORDER BY m.seq))
      FROM unnest(due_ids, from_seqs, to_seqs) AS d(conversation_id, from_seq, to_seq)
      JOIN messages m ON m.conversation_id = d.conversation_id AND m.seq > d.from_seq AND m.seq <= d.to_seq
     WHERE m.deleted_at IS NULL AND m.body IS NOT NULL
     GROUP BY m.conversation_id, (m.seq - d.from_seq - 1) / 64;
    UPDATE message_search_progress p SET indexed_seq = d.to_seq
      FROM unnest(due_ids, to_seqs) AS d(conversation_id, to_seq)
     WHERE p.conversation_id = d.conversation_id;
END;
$$;

-- Conversations with messages not yet in a block; the indexer's catch-up after a
-- restart, and its periodic look for what another instance left behind.
CREATE FUNCTION message_search_behind(max_conversations bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT p.conversation_id FROM message_search_progress p JOIN conversations c ON c.id = p.conversation_id
     WHERE c.last_seq > p.indexed_seq
     LIMIT max_conversations
$$;

-- Search no longer reads a per-message index.
DROP INDEX messages_body_trgm;
