-- Message search, the bounded scan: $1 user, $2 ILIKE pattern, $3 one conversation or
-- NULL, $4-$6 the keyset cursor or NULLs, $7 the page size, $8 how many conversations,
-- $9 how many messages of each. Each row carries `horizon`: nothing left unread is newer.
WITH ranked AS (
    SELECT cm.conversation_id, cm.visible_from_seq, c.last_seq,
           COALESCE(c.last_message_at, c.created_at) AS active_at
      FROM conversation_members cm JOIN conversations c ON c.id = cm.conversation_id
     WHERE cm.user_id = $1 AND ($3::bigint IS NULL OR cm.conversation_id = $3)
     ORDER BY active_at DESC, cm.conversation_id DESC
     LIMIT $8::bigint + 1
), scanned AS (
    SELECT * FROM ranked ORDER BY active_at DESC, conversation_id DESC LIMIT $8
), horizon AS (
    SELECT GREATEST(
             (SELECT active_at FROM ranked ORDER BY active_at DESC, conversation_id DESC OFFSET $8 LIMIT 1),
             (SELECT max(m.created_at) FROM scanned s
                JOIN messages m ON m.conversation_id = s.conversation_id AND m.seq = s.last_seq - $9
               WHERE m.seq > s.visible_from_seq)) AS at
)
SELECT m.conversation_id AS "conversation_id!: ConversationId", m.seq AS "seq!", m.version AS "version!",
       m.sender_id AS "sender_id!: UserId", m.client_msg_id AS "client_msg_id!", m.kind AS "kind!",
       m.body AS "body?", m.content AS "content?", m.reply_to_seq AS "reply_to_seq?", m.mentions AS "mentions!",
       m.mention_all AS "mention_all!", m.created_at AS "created_at!", m.edited_at AS "edited_at?",
       m.deleted_at AS "deleted_at?",
       (SELECT at FROM horizon) AS "horizon?"
  FROM scanned s
 CROSS JOIN LATERAL (
        SELECT * FROM messages m
         WHERE m.conversation_id = s.conversation_id
           AND m.seq > GREATEST(s.visible_from_seq, s.last_seq - $9)
           AND m.deleted_at IS NULL
           AND m.body ILIKE $2
           AND ($4::timestamptz IS NULL OR (m.created_at, m.conversation_id, m.seq) < ($4, $5, $6))
         ORDER BY m.seq DESC
         LIMIT $7) AS m
 ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
 LIMIT $7
