-- One page of history read backwards along the primary key: $1 conversation, seq
-- strictly between $2 and $3, the $4 newest of them.
SELECT conversation_id AS "conversation_id!: ConversationId", seq AS "seq!", version AS "version!",
       sender_id AS "sender_id!: UserId", client_msg_id AS "client_msg_id!", kind AS "kind!", body, content,
       reply_to_seq, mentions AS "mentions!", mention_all AS "mention_all!", created_at AS "created_at!",
       edited_at, deleted_at
  FROM messages
 WHERE conversation_id = $1 AND seq > $2 AND seq < $3
 ORDER BY seq DESC
 LIMIT $4
