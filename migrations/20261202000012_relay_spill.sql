-- Events too large for one NOTIFY payload (under 8,000 bytes) that are not messages (a
-- long group announcement, say): the sending instance stores the event here and
-- notifies its id; each receiving instance reads it once. Rows are needed for seconds
-- and deleted after five minutes. UNLOGGED: after a PostgreSQL crash every listener
-- reconnects and its sockets resync anyway.
CREATE UNLOGGED TABLE relay_spill (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
