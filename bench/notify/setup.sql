-- A scratch model of the writer's batch: a conversation row whose counters are bumped
-- under its lock, and message rows with the same kinds of indexes as `messages`.
DROP TABLE IF EXISTS nb_messages, nb_conversations;
CREATE TABLE nb_conversations (id bigint PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0,
                               last_version bigint NOT NULL DEFAULT 0, last_message_at timestamptz);
INSERT INTO nb_conversations (id) SELECT generate_series(1, 1024);
CREATE TABLE nb_messages (conversation_id bigint NOT NULL REFERENCES nb_conversations,
                          seq bigint NOT NULL, sender_id bigint NOT NULL, client_msg_id uuid NOT NULL,
                          body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
                          PRIMARY KEY (conversation_id, seq), UNIQUE (sender_id, client_msg_id));
