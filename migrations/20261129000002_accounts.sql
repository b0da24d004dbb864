-- Accounts, sessions and refresh tokens.

CREATE TABLE users (
    -- bigint, not UUID: the user id is the key of every relation table (friends,
    -- members, read markers), where 8 bytes instead of 16 keeps indexes small.
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stored as typed; uniqueness is case-insensitive (users_username_key below).
    username      text NOT NULL CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
    -- Argon2id PHC string.
    password_hash text NOT NULL,
    nickname      text NOT NULL CONSTRAINT users_nickname_length CHECK (char_length(nickname) BETWEEN 1 AND 64),
    avatar_url    text CONSTRAINT users_avatar_url_length CHECK (octet_length(avatar_url) <= 2048),
    birthday      date,
    bio           text NOT NULL DEFAULT '' CONSTRAINT users_bio_length CHECK (char_length(bio) <= 500),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- User search: trigram indexes serve fuzzy matching (%) and LIKE 'prefix%' for
-- queries of three or more characters; the text_pattern_ops btrees serve short
-- prefixes, which have too few trigrams, under any collation.
CREATE INDEX users_username_trgm ON users USING gin (lower(username) gin_trgm_ops);
CREATE INDEX users_nickname_trgm ON users USING gin (lower(nickname) gin_trgm_ops);
CREATE INDEX users_username_prefix ON users (lower(username) text_pattern_ops);
CREATE INDEX users_nickname_prefix ON users (lower(nickname) text_pattern_ops);

-- One row per login on a device. Access tokens name their session (the `sid` claim)
-- and are refused once it is revoked or expired.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_name    text NOT NULL DEFAULT '' CONSTRAINT sessions_device_name_length CHECK (char_length(device_name) <= 64),
    user_agent     text NOT NULL DEFAULT '' CONSTRAINT sessions_user_agent_length CHECK (char_length(user_agent) <= 256),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    -- Sliding: every refresh moves it to now() + refresh token lifetime.
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);

CREATE INDEX sessions_user_id ON sessions (user_id, created_at);

-- Every refresh token ever issued, by SHA-256 hash (the token itself is 256 random
-- bits, so a fast hash is enough). A token is single use: presenting one whose
-- used_at is set is reuse, and revokes the whole session.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
