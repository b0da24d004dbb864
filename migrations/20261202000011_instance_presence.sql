-- Presence across instances: a user is online while any live instance holds a socket of
-- theirs. Each instance heartbeats its row; a row whose `expires_at` passed belongs to
-- an instance that died (or stopped), and whichever instance notices first reaps it and
-- announces its users offline. Both tables are UNLOGGED: presence is rebuilt from the
-- sockets themselves, so after a PostgreSQL crash empties them the instances simply
-- register again, and no WAL is spent on connection churn.
CREATE UNLOGGED TABLE instances (
    id         uuid PRIMARY KEY,
    -- The last moment the instance was known alive: its users' `last_seen_at` if it dies.
    alive_at   timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    -- Set by a graceful stop. An instance that expires without it crashed, and may have
    -- committed events it never relayed: peers then tell every socket to resync.
    stopped    boolean NOT NULL DEFAULT false
);

CREATE INDEX instances_expires_at ON instances (expires_at);

-- One row per (user, instance with at least one socket of the user). No foreign key to
-- `instances`: the reaper deletes both sides itself and needs the user ids it removes.
CREATE UNLOGGED TABLE instance_users (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instance_id uuid NOT NULL,
    PRIMARY KEY (user_id, instance_id)
);

CREATE INDEX instance_users_instance ON instance_users (instance_id);
