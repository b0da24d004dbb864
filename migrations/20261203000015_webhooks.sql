-- The webhook outbox (src/webhooks/, docs/operations.md "Webhooks"): one row per
-- (message, offline recipient, endpoint URL), written by the message writer in the
-- message's own transaction, so an event exists exactly when its message does and
-- survives any restart. A worker on every instance claims due rows with
-- `FOR UPDATE SKIP LOCKED` and a lease (`next_attempt_at` moved ahead), posts them, and
-- deletes them on success; a failure moves `next_attempt_at` by the backoff; after the
-- last attempt the row stays as a dead letter (`dead_at` set) for operators to read or
-- requeue.
--
-- A row is a snapshot of the event, not a relation: no foreign keys, so queueing takes
-- no lock on `users` and costs one index entry, and deleting a user or conversation
-- later does not reach back into deliveries that are already on their way.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY CONSTRAINT webhook_deliveries_pkey PRIMARY KEY,
    -- One endpoint per row, so one endpoint failing never re-sends to another.
    endpoint        text NOT NULL,
    recipient_id    bigint NOT NULL,
    conversation_id bigint NOT NULL,
    seq             bigint NOT NULL,
    sender_id       bigint NOT NULL,
    kind            text NOT NULL,
    -- The recipient muted the conversation (a receiver may still count it as unread).
    muted           boolean NOT NULL,
    -- Only with GOIM_WEBHOOK_PREVIEW=text; NULL otherwise, so nothing of the message's
    -- content is stored twice unless the operator asked for it.
    preview         text,
    sender_name     text,
    created_at      timestamptz NOT NULL,
    -- Attempts started (a claim counts one before the request goes out).
    attempts        integer NOT NULL DEFAULT 0,
    -- Due time; while a worker holds the row, the end of its lease.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Why the latest attempt failed (an HTTP status or a connection error), for operators.
    last_error      text,
    -- Set when the worker gave up: the row is a dead letter and no worker claims it.
    dead_at         timestamptz
);

-- The workers' claim: due rows in due order; dead letters are not in it.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE dead_at IS NULL;
