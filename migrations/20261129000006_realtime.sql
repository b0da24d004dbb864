-- Real-time support: change versions for catch-up, delivery markers, presence,
-- WebSocket tickets.

-- Every change in a conversation (new message, edit, recall, reaction) takes the next
-- version; a message carries the version of its latest change. Versions are assigned
-- under the conversation row lock, so they commit in order, and catch-up reads only the
-- rows above a client's version through the index below.
ALTER TABLE conversations ADD COLUMN last_version bigint NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN version bigint NOT NULL DEFAULT 0;
CREATE INDEX messages_conversation_version ON messages (conversation_id, version);

-- Delivery receipts: the highest seq any device of the member confirmed receiving.
ALTER TABLE conversation_members ADD COLUMN last_delivered_seq bigint NOT NULL DEFAULT 0;

-- Written when a user goes offline, not per heartbeat.
ALTER TABLE users ADD COLUMN last_seen_at timestamptz;

-- One-time tickets for the WebSocket handshake (browsers cannot send headers). Kept in
-- the database so that any instance behind a load balancer can redeem them.
CREATE TABLE ws_tickets (
    ticket_hash bytea PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX ws_tickets_expires_at ON ws_tickets (expires_at);
