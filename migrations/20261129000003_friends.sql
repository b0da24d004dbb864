-- Friend requests, friendships and blocks.

-- A friendship is stored as two directed rows, (a, b) and (b, a), written and removed
-- together in one transaction. "Friends of X" is then a range scan of the primary key,
-- and mutual friends / friends of friends are joins of such ranges, all index-only.
CREATE TABLE friendships (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The name user_id sees for friend_id (a private alias).
    remark     text CONSTRAINT friendships_remark_length CHECK (char_length(remark) <= 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT friendships_pkey PRIMARY KEY (user_id, friend_id),
    CONSTRAINT friendships_not_self CHECK (user_id <> friend_id)
);

CREATE TABLE friend_requests (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_user  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    note       text NOT NULL DEFAULT '' CONSTRAINT friend_requests_note_length CHECK (char_length(note) <= 200),
    status     text NOT NULL DEFAULT 'pending'
               CONSTRAINT friend_requests_status CHECK (status IN ('pending', 'accepted', 'declined', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz,
    CONSTRAINT friend_requests_not_self CHECK (from_user <> to_user)
);

-- At most one pending request per direction; history rows stay for the re-send rule.
CREATE UNIQUE INDEX friend_requests_pending_key ON friend_requests (from_user, to_user) WHERE status = 'pending';
CREATE INDEX friend_requests_incoming ON friend_requests (to_user, id) WHERE status = 'pending';
CREATE INDEX friend_requests_outgoing ON friend_requests (from_user, id) WHERE status = 'pending';
-- The re-send cooldown looks up the latest decline of a pair.
CREATE INDEX friend_requests_declined ON friend_requests (from_user, to_user, decided_at) WHERE status = 'declined';

CREATE TABLE blocks (
    blocker_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT blocks_pkey PRIMARY KEY (blocker_id, blocked_id),
    CONSTRAINT blocks_not_self CHECK (blocker_id <> blocked_id)
);

-- "Is there a block either way" probes both (a, b) and (b, a) on the primary key.
