-- Files and images sent in chats (src/service/uploads.rs, docs/protocol.md "Uploads"),
-- stored here like everything else so one `pg_dump` still backs up all of GOIM.
--
-- An upload is streamed in as numbered chunks, each its own short statement, so a slow
-- client never holds a pooled connection or the whole file in memory; `completed_at` is
-- set once every chunk is in and the type has been sniffed from the bytes. A message of
-- kind `image` or `file` names the upload in `content->>'upload_id'`; who may read an
-- upload follows from the messages that name it (see the index below), so there is no
-- second copy of the access rules here.
CREATE TABLE uploads (
    id           uuid CONSTRAINT uploads_pkey PRIMARY KEY,
    owner_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The client's file name, without any directory part.
    name         text NOT NULL CONSTRAINT uploads_name CHECK (length(name) BETWEEN 1 AND 255),
    -- Sniffed from the first bytes, never taken from the client.
    mime         text NOT NULL,
    size         bigint NOT NULL DEFAULT 0,
    -- Set when the bytes decoded as an image (the only uploads shown inline).
    width        integer,
    height       integer,
    thumbnail    bytea,
    thumbnail_mime text,
    sha256       bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    -- When the orphan sweep next looks at this upload: two hours after it began (longer
    -- than any upload may take), a day after it finished, an hour after a send named it
    -- (a message on its way to commit never loses its file), and a day after the sweep
    -- last found it named. So each sweep reads only the uploads that are due.
    sweep_after  timestamptz NOT NULL DEFAULT now() + interval '2 hours'
);

-- The quota's sum per user, from the index alone.
CREATE INDEX uploads_owner ON uploads (owner_id) INCLUDE (size);
CREATE INDEX uploads_sweep_after ON uploads (sweep_after);

CREATE TABLE upload_chunks (
    upload_id uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    n         integer NOT NULL CONSTRAINT upload_chunks_n CHECK (n >= 0),
    data      bytea NOT NULL,
    CONSTRAINT upload_chunks_pkey PRIMARY KEY (upload_id, n)
);
-- Most uploads are already compressed (JPEG, PNG, archives): storing the chunks
-- out of line without trying to compress them again saves CPU on both ways.
ALTER TABLE upload_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The messages that name an upload: read access and the orphan sweep both ask "which
-- live messages refer to this upload?".
CREATE INDEX messages_upload_id ON messages ((content ->> 'upload_id'))
    WHERE kind IN ('image', 'file') AND content ? 'upload_id';

-- Whether a live (not recalled or removed) message names the upload: the one definition
-- the orphan sweep and account deletion share. Its query uses the index above.
CREATE FUNCTION upload_is_named(upload uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN EXISTS (
        SELECT 1 FROM messages m
         WHERE m.kind IN ('image', 'file') AND m.content ? 'upload_id'
           AND m.content ->> 'upload_id' = upload::text AND m.deleted_at IS NULL);
