-- Message search, the trigram step: $1 user, $2 ILIKE pattern, $3 one conversation or
-- NULL, $4-$6 the keyset cursor or NULLs, $7 the page size. The trigram index finds the
-- blocks (migration 18) whose lowercased text matches the lowercased pattern
-- (what ILIKE does); their messages, and each conversation's messages not yet in a
-- block, are then checked one by one.
WITH mine AS (
    SELECT cm.conversation_id, cm.visible_from_seq, COALESCE(p.indexed_seq, 0) AS indexed_seq
      FROM conversation_members cm
      LEFT JOIN message_search_progress p ON p.conversation_id = cm.conversation_id
     WHERE cm.user_id = $1 AND ($3::bigint IS NULL OR cm.conversation_id = $3)
), ranges AS (
    SELECT b.conversation_id, GREATEST(b.first_seq, mine.visible_from_seq + 1) AS low, b.last_seq AS high
      FROM message_search_blocks b JOIN mine ON mine.conversation_id = b.conversation_id
     WHERE b.lowered_body LIKE lower($2) AND b.last_seq > mine.visible_from_seq
    UNION ALL
    SELECT conversation_id, GREATEST(indexed_seq, visible_from_seq) + 1, 9223372036854775807 FROM mine
)
SELECT m.conversation_id AS "conversation_id!: ConversationId", m.seq AS "seq!", m.version AS "version!",
       m.sender_id AS "sender_id!: UserId", m.client_msg_id AS "client_msg_id!", m.kind AS "kind!",
       m.body AS "body?", m.content AS "content?", m.reply_to_seq AS "reply_to_seq?", m.mentions AS "mentions!",
       m.mention_all AS "mention_all!", m.created_at AS "created_at!", m.edited_at AS "edited_at?",
       m.deleted_at AS "deleted_at?"
  FROM ranges r
  JOIN messages m ON m.conversation_id = r.conversation_id AND m.seq BETWEEN r.low AND r.high
 WHERE m.deleted_at IS NULL
   AND m.body ILIKE $2
   AND ($4::timestamptz IS NULL OR (m.created_at, m.conversation_id, m.seq) < ($4, $5, $6))
 ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
 LIMIT $7
