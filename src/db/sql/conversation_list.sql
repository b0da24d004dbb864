-- The conversation list: $1 the user, $2 archived or not, $3-$5 the keyset cursor or
-- NULLs, $6 the page size.
WITH mine AS (
   SELECT c.id, c.kind, c.group_id, c.user_low, c.user_high, c.last_seq, c.last_version,
          cm.last_read_seq, cm.pinned, cm.muted, cm.archived,
          COALESCE(c.last_message_at, c.created_at) AS activity_at
     FROM conversation_members cm
     JOIN conversations c ON c.id = cm.conversation_id
    WHERE cm.user_id = $1 AND cm.archived = $2
), page AS (
   SELECT * FROM mine
    WHERE $3::boolean IS NULL
       OR (pinned, activity_at, id) < ($3, $4, $5)
    ORDER BY pinned DESC, activity_at DESC, id DESC
    LIMIT $6
)
SELECT p.id AS "id!: ConversationId", p.kind AS "kind!", p.group_id AS "group_id?: GroupId",
       g.name AS "group_name?", g.avatar_url AS "group_avatar_url?",
       u.id AS "peer_id?: UserId", u.username AS "peer_username?", u.nickname AS "peer_nickname?",
       u.avatar_url AS "peer_avatar_url?",
       p.last_seq AS "last_seq!", p.last_version AS "last_version!", p.last_read_seq AS "last_read_seq!",
       p.pinned AS "pinned!", p.muted AS "muted!", p.archived AS "archived!", p.activity_at AS "activity_at!",
       m.sender_id AS "last_sender_id?: UserId", m.kind AS "last_kind?",
       left(m.body, 200) AS "last_body?", (m.deleted_at IS NOT NULL) AS "last_deleted?",
       m.content ->> 'name' AS "last_file_name?",
       m.created_at AS "last_created_at?"
  FROM page p
  LEFT JOIN groups g ON g.id = p.group_id
  LEFT JOIN users u ON u.id = CASE WHEN p.user_low = $1 THEN p.user_high ELSE p.user_low END
  LEFT JOIN messages m ON m.conversation_id = p.id AND m.seq = p.last_seq
 ORDER BY p.pinned DESC, p.activity_at DESC, p.id DESC
