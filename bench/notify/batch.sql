-- One writer-shaped batch; `-D notify=0|1|2`: no NOTIFY, inside the transaction, after it.
\set c random(1, 1024)
BEGIN;
UPDATE nb_conversations SET last_seq = last_seq + 10, last_version = last_version + 10, last_message_at = now() WHERE id = :c;
INSERT INTO nb_messages (conversation_id, seq, sender_id, client_msg_id, body)
  SELECT :c, (SELECT last_seq FROM nb_conversations WHERE id = :c) - 10 + i, :client_id, gen_random_uuid(), repeat('x', 100)
  FROM generate_series(1, 10) AS i;
\if :notify = 1
SELECT pg_notify('nb_events', repeat('e', 1500));
\endif
COMMIT;
\if :notify = 2
SELECT pg_notify('nb_events', repeat('e', 1500));
\endif
