-- Server administration and account deletion (docs/operations.md, "Administration").

-- `is_admin` is granted only by `goim admin grant` on the command line, never through the
-- API. A deactivated account keeps its data but cannot sign in; a deleted one keeps only
-- its id (so the messages it sent can still name an author) and a placeholder name.
ALTER TABLE users
    ADD COLUMN is_admin       boolean NOT NULL DEFAULT false,
    ADD COLUMN deactivated_at timestamptz,
    ADD COLUMN deleted_at     timestamptz;

-- A deleted account's placeholder name ('#deleted-<id>') cannot be registered: '#' is
-- outside the username alphabet.
ALTER TABLE users DROP CONSTRAINT users_username_format;
ALTER TABLE users ADD CONSTRAINT users_username_format
    CHECK (username ~ '^[A-Za-z0-9_.-]{3,32}$' OR (deleted_at IS NOT NULL AND username ~ '^#deleted-[0-9]+$'));

-- The names of deleted accounts, held back from registration until `available_at` so
-- nobody can take over a name others still know. Stored as SHA-256 of the lower-cased
-- name: the check needs equality only, and no personal data outlives the account.
CREATE TABLE retired_usernames (
    username_hash bytea PRIMARY KEY,
    available_at  timestamptz NOT NULL
);

-- Every server-admin action: who (NULL actor = the command line), what, when, on whom.
-- Targets are plain ids, not foreign keys: the trail outlives what it names.
CREATE TABLE admin_audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    actor_id        bigint REFERENCES users (id) ON DELETE SET NULL,
    action          text NOT NULL,
    target_user_id  bigint,
    target_group_id bigint,
    detail          jsonb NOT NULL DEFAULT '{}'
);
