-- Message search, the trigram step: $1 user, $2 ILIKE pattern, $3 one conversation or
-- NULL, $4-$6 the keyset cursor or NULLs, $7 the page size.
SELECT m.conversation_id AS "conversation_id!: ConversationId", m.seq AS "seq!", m.version AS "version!",
       m.sender_id AS "sender_id!: UserId", m.client_msg_id AS "client_msg_id!", m.kind AS "kind!",
       m.body AS "body?", m.content AS "content?", m.reply_to_seq AS "reply_to_seq?", m.mentions AS "mentions!",
       m.mention_all AS "mention_all!", m.created_at AS "created_at!", m.edited_at AS "edited_at?",
       m.deleted_at AS "deleted_at?"
  FROM messages m
  JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id = $1
 WHERE m.deleted_at IS NULL
   AND m.body ILIKE $2
   AND m.seq > cm.visible_from_seq
   AND ($3::bigint IS NULL OR m.conversation_id = $3)
   AND ($4::timestamptz IS NULL OR (m.created_at, m.conversation_id, m.seq) < ($4, $5, $6))
 ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
 LIMIT $7
