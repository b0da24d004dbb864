-- Conversations, members' per-conversation state, messages and reactions.
--
-- Every large table is keyed by conversation_id first, so it can later be partitioned
-- (declarative partitioning by hash of conversation_id) or distributed by it (Citus)
-- without changing a query: every hot query names one conversation.

CREATE TABLE conversations (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text NOT NULL CONSTRAINT conversations_kind CHECK (kind IN ('direct', 'group')),
    group_id        bigint UNIQUE REFERENCES groups (id) ON DELETE CASCADE,
    -- A direct conversation's two users, smaller id first: one conversation per pair.
    user_low        bigint REFERENCES users (id) ON DELETE CASCADE,
    user_high       bigint REFERENCES users (id) ON DELETE CASCADE,
    -- The highest committed seq; the message writer is its only writer.
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_shape CHECK (
        (kind = 'direct' AND group_id IS NULL AND user_low IS NOT NULL AND user_high IS NOT NULL AND user_low < user_high)
        OR (kind = 'group' AND group_id IS NOT NULL AND user_low IS NULL AND user_high IS NULL))
);

CREATE UNIQUE INDEX conversations_direct_pair_key ON conversations (user_low, user_high) WHERE kind = 'direct';

-- Who may read a conversation, and their own state in it. For group conversations the
-- rows follow group_members through triggers, so leaving or being kicked removes access
-- in the same transaction.
CREATE TABLE conversation_members (
    conversation_id  bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id          bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Only moves forward. Sending moves it to the sent seq, so unread = last_seq - last_read_seq.
    last_read_seq    bigint NOT NULL DEFAULT 0,
    -- Messages with seq <= this are not visible (groups with history_visibility = since_join).
    visible_from_seq bigint NOT NULL DEFAULT 0,
    pinned           boolean NOT NULL DEFAULT false,
    muted            boolean NOT NULL DEFAULT false,
    archived         boolean NOT NULL DEFAULT false,
    joined_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversation_members_pkey PRIMARY KEY (conversation_id, user_id)
);

CREATE INDEX conversation_members_user_id ON conversation_members (user_id, conversation_id);

CREATE TABLE messages (
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    sender_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Chosen by the client; a retry with the same id returns the original message.
    client_msg_id   uuid NOT NULL,
    -- SHA-256 of the canonical request, to tell a retry from a different message
    -- reusing an id.
    request_hash    bytea NOT NULL,
    kind            text NOT NULL CONSTRAINT messages_kind CHECK (kind IN ('text', 'image', 'file', 'link')),
    body            text,
    content         jsonb,
    reply_to_seq    bigint,
    mentions        bigint[] NOT NULL DEFAULT '{}',
    mention_all     boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    edited_at       timestamptz,
    -- A recalled or removed message keeps its row (seq stays gap-free) without content.
    deleted_at      timestamptz,
    deleted_by      bigint REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT messages_pkey PRIMARY KEY (conversation_id, seq),
    CONSTRAINT messages_reply_before CHECK (reply_to_seq IS NULL OR (reply_to_seq > 0 AND reply_to_seq < seq))
);

-- Idempotent send: one message per (conversation, sender, client_msg_id). Scoped to the
-- conversation so the key stays partition-compatible.
CREATE UNIQUE INDEX messages_client_msg_id_key ON messages (conversation_id, sender_id, client_msg_id);

-- Substring search (works for CJK text, where word-based full-text search does not).
CREATE INDEX messages_body_trgm ON messages USING gin (body gin_trgm_ops) WHERE deleted_at IS NULL;

CREATE TABLE message_reactions (
    conversation_id bigint NOT NULL,
    seq             bigint NOT NULL,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji           text NOT NULL CONSTRAINT message_reactions_emoji_length CHECK (octet_length(emoji) BETWEEN 1 AND 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_reactions_pkey PRIMARY KEY (conversation_id, seq, user_id, emoji),
    CONSTRAINT message_reactions_message_fkey FOREIGN KEY (conversation_id, seq)
        REFERENCES messages (conversation_id, seq) ON DELETE CASCADE
);

-- A group gets its conversation when it is created.
CREATE FUNCTION groups_create_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conversations (kind, group_id) VALUES ('group', NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER groups_create_conversation AFTER INSERT ON groups
    FOR EACH ROW EXECUTE FUNCTION groups_create_conversation();

-- Group conversation membership follows group membership, in the same transaction.
CREATE FUNCTION group_members_sync_conversation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO conversation_members (conversation_id, user_id, last_read_seq, visible_from_seq)
        SELECT c.id, NEW.user_id, c.last_seq,
               CASE WHEN g.history_visibility = 'since_join' THEN c.last_seq ELSE 0 END
          FROM conversations c JOIN groups g ON g.id = c.group_id
         WHERE c.group_id = NEW.group_id
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM conversation_members cm
         USING conversations c
         WHERE c.group_id = OLD.group_id AND cm.conversation_id = c.id AND cm.user_id = OLD.user_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER group_members_sync_conversation AFTER INSERT OR DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION group_members_sync_conversation();
