-- User search: $1 query, $2 prefix pattern, $3 substring pattern (NULL skips
-- substrings), $4/$5 the keyset cursor (score, id) or NULLs, $6 the page size, $7 how
-- many candidates each way of matching contributes, $8 whether to look for similar names.
-- Deleted and deactivated accounts are not found.
WITH candidates AS (
   (SELECT id FROM users WHERE lower(username) LIKE $2 ORDER BY lower(username) USING ~<~ LIMIT $7)
   UNION
   (SELECT id FROM users WHERE lower(nickname) LIKE $2 ORDER BY lower(nickname) USING ~<~ LIMIT $7)
   UNION
   (SELECT id FROM users WHERE $3::text IS NOT NULL AND lower(username) LIKE $3
       AND lower(username) NOT LIKE $2 AND lower(nickname) NOT LIKE $2 LIMIT $7)
   UNION
   (SELECT id FROM users WHERE $3::text IS NOT NULL AND lower(nickname) LIKE $3
       AND lower(username) NOT LIKE $2 AND lower(nickname) NOT LIKE $2 LIMIT $7)
   UNION
   (SELECT id FROM users
     WHERE $8 AND NOT EXISTS (SELECT 1 FROM users WHERE lower(username) = $1) AND lower(username) % $1
       AND lower(username) NOT LIKE $2 AND lower(nickname) NOT LIKE $2
       AND NOT COALESCE(lower(username) LIKE $3 OR lower(nickname) LIKE $3, false)
     ORDER BY lower(username) <-> $1 LIMIT $7)
   UNION
   (SELECT id FROM users
     WHERE $8 AND NOT EXISTS (SELECT 1 FROM users WHERE lower(username) = $1) AND lower(nickname) % $1
       AND lower(username) NOT LIKE $2 AND lower(nickname) NOT LIKE $2
       AND NOT COALESCE(lower(username) LIKE $3 OR lower(nickname) LIKE $3, false)
     ORDER BY lower(nickname) <-> $1 LIMIT $7)
)
SELECT id AS "id!: UserId", username AS "username!", nickname AS "nickname!", avatar_url, score AS "score!" FROM (
   SELECT u.id, u.username, u.nickname, u.avatar_url,
          (CASE WHEN lower(u.username) = $1 THEN 4
                WHEN lower(u.username) LIKE $2 THEN 3
                WHEN lower(u.nickname) LIKE $2 THEN 2
                WHEN lower(u.username) LIKE $3 OR lower(u.nickname) LIKE $3 THEN 1
                ELSE 0 END
           + greatest(similarity(lower(u.username), $1), similarity(lower(u.nickname), $1)))::real AS score
     FROM candidates c JOIN users u ON u.id = c.id
    WHERE u.deleted_at IS NULL AND u.deactivated_at IS NULL
) AS hits
WHERE $4::real IS NULL OR (score, id) < ($4, $5)
ORDER BY score DESC, id DESC
LIMIT $6
