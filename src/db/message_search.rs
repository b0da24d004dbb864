//! Message search: a case-insensitive substring (any script, CJK included) in the
//! conversations a user belongs to and may see, newest first, keyset-paginated on
//! `(created_at, conversation_id, seq)`.
//!
//! No single plan is cheap for every query on a large table, so search runs in up to
//! two steps and says which one answered ([`SearchPlan`]):
//!
//! 1. **Recent**: the newest [`RECENT_WINDOW`] messages of the caller's
//!    [`RECENT_CONVERSATIONS`] most recently active conversations, each read backwards
//!    along the primary key. A word that is at all common fills the page here, and the
//!    page is *exact* when its oldest hit is newer than anything left unread (the next
//!    conversation's latest activity, and the message just below each window), which the
//!    statement computes alongside. The work is bounded whatever the word.
//! 2. Otherwise, for needles with a run of three or more letters or digits, **Trigram**:
//!    the GIN trigram index finds every match in the whole table, then membership
//!    filters them. Cheap for rare words, which is when step 1 did not suffice.
//!    For shorter needles (one- and two-character CJK words: no trigram to look up),
//!    **Everything**: step 1's statement over all of the caller's conversations and
//!    messages — bounded by what the caller can see rather than by the whole table.

use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;

use super::messages::{MESSAGE_COLUMNS, MessageRow};
use crate::domain::{ConversationId, UserId};

/// How many of the caller's most recently active conversations step 1 reads.
pub const RECENT_CONVERSATIONS: i64 = 16;
/// How many of the newest messages of each of them step 1 reads.
pub const RECENT_WINDOW: i64 = 200;

/// Which statement answered a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPlan {
    Recent,
    Trigram,
    Everything,
}

/// Where a page of results continues: after this message.
pub type SearchCursor = (OffsetDateTime, ConversationId, i64);

/// The bounded scan (steps 1 and, unbounded, "everything"): $1 user, $2 ILIKE pattern,
/// $3 one conversation or NULL, $4–$6 the cursor or NULLs, $7 the page size, $8 how many
/// conversations, $9 how many messages of each. Each row carries `horizon`: nothing
/// left unread is newer. Public so the benchmark can `EXPLAIN` exactly this.
pub fn recent_sql() -> String {
    format!(
        "WITH ranked AS (
            SELECT cm.conversation_id, cm.visible_from_seq, c.last_seq,
                   COALESCE(c.last_message_at, c.created_at) AS active_at
              FROM conversation_members cm JOIN conversations c ON c.id = cm.conversation_id
             WHERE cm.user_id = $1 AND ($3::bigint IS NULL OR cm.conversation_id = $3)
             ORDER BY active_at DESC, cm.conversation_id DESC
             LIMIT $8 + 1
         ), scanned AS (
            SELECT * FROM ranked ORDER BY active_at DESC, conversation_id DESC LIMIT $8
         ), horizon AS (
            SELECT GREATEST(
                     (SELECT active_at FROM ranked ORDER BY active_at DESC, conversation_id DESC OFFSET $8 LIMIT 1),
                     (SELECT max(m.created_at) FROM scanned s
                        JOIN messages m ON m.conversation_id = s.conversation_id AND m.seq = s.last_seq - $9
                       WHERE m.seq > s.visible_from_seq)) AS at
         )
         SELECT {columns}, (SELECT at FROM horizon) AS horizon
           FROM scanned s
          CROSS JOIN LATERAL (
                SELECT {MESSAGE_COLUMNS} FROM messages m
                 WHERE m.conversation_id = s.conversation_id
                   AND m.seq > GREATEST(s.visible_from_seq, s.last_seq - $9)
                   AND m.deleted_at IS NULL
                   AND m.body ILIKE $2
                   AND ($4::timestamptz IS NULL OR (m.created_at, m.conversation_id, m.seq) < ($4, $5, $6))
                 ORDER BY m.seq DESC
                 LIMIT $7) AS m
          ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
          LIMIT $7",
        columns = qualified_columns()
    )
}

/// The trigram step: $1 user, $2 ILIKE pattern, $3 one conversation or NULL, $4–$6 the
/// cursor or NULLs, $7 the page size. Public so the benchmark can `EXPLAIN` exactly this.
pub fn trigram_sql() -> String {
    format!(
        "SELECT {columns}
           FROM messages m
           JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id = $1
          WHERE m.deleted_at IS NULL
            AND m.body ILIKE $2
            AND m.seq > cm.visible_from_seq
            AND ($3::bigint IS NULL OR m.conversation_id = $3)
            AND ($4::timestamptz IS NULL OR (m.created_at, m.conversation_id, m.seq) < ($4, $5, $6))
          ORDER BY m.created_at DESC, m.conversation_id DESC, m.seq DESC
          LIMIT $7",
        columns = qualified_columns()
    )
}

fn qualified_columns() -> String {
    MESSAGE_COLUMNS.split(", ").map(|c| format!("m.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

#[derive(FromRow)]
struct RecentHit {
    #[sqlx(flatten)]
    row: MessageRow,
    horizon: Option<OffsetDateTime>,
}

/// Messages containing `needle`, newest first (see the module documentation), and
/// which statement answered.
pub async fn search(
    pool: &PgPool,
    user: UserId,
    needle: &str,
    conversation: Option<ConversationId>,
    after: Option<SearchCursor>,
    limit: i64,
) -> sqlx::Result<(Vec<MessageRow>, SearchPlan)> {
    let pattern = ilike_pattern(needle);
    let recent =
        bounded_scan(pool, user, &pattern, conversation, after, limit, RECENT_CONVERSATIONS, RECENT_WINDOW).await?;
    if is_exact_page(&recent, limit) {
        return Ok((recent.into_iter().map(|hit| hit.row).collect(), SearchPlan::Recent));
    }
    if has_trigram(needle) {
        let rows = sqlx::query_as(&trigram_sql())
            .bind(user)
            .bind(&pattern)
            .bind(conversation)
            .bind(after.map(|a| a.0))
            .bind(after.map(|a| a.1))
            .bind(after.map(|a| a.2))
            .bind(limit)
            .fetch_all(pool)
            .await?;
        return Ok((rows, SearchPlan::Trigram));
    }
    let everything = bounded_scan(pool, user, &pattern, conversation, after, limit, i64::MAX / 4, i64::MAX / 4).await?;
    Ok((everything.into_iter().map(|hit| hit.row).collect(), SearchPlan::Everything))
}

#[allow(clippy::too_many_arguments)]
async fn bounded_scan(
    pool: &PgPool,
    user: UserId,
    pattern: &str,
    conversation: Option<ConversationId>,
    after: Option<SearchCursor>,
    limit: i64,
    conversations: i64,
    window: i64,
) -> sqlx::Result<Vec<RecentHit>> {
    sqlx::query_as(&recent_sql())
        .bind(user)
        .bind(pattern)
        .bind(conversation)
        .bind(after.map(|a| a.0))
        .bind(after.map(|a| a.1))
        .bind(after.map(|a| a.2))
        .bind(limit)
        .bind(conversations)
        .bind(window)
        .fetch_all(pool)
        .await
}

/// The ILIKE pattern for a substring: `%`, `_` and `\` in the needle match literally.
pub fn ilike_pattern(needle: &str) -> String {
    format!("%{}%", super::users::escape_like(needle))
}

/// A full page whose oldest hit is newer than everything the scan left unread is the
/// true first page: nothing unread could rank above it.
fn is_exact_page(hits: &[RecentHit], limit: i64) -> bool {
    match hits.last() {
        Some(last) if hits.len() as i64 >= limit => last.horizon.is_none_or(|horizon| last.row.created_at > horizon),
        _ => false,
    }
}

/// Whether pg_trgm can look the needle up: it indexes runs of letters and digits, and
/// a LIKE pattern yields trigrams only from a run of three or more.
pub fn has_trigram(needle: &str) -> bool {
    let mut run = 0;
    for c in needle.chars() {
        run = if c.is_alphanumeric() { run + 1 } else { 0 };
        if run >= 3 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigram_lookups_need_a_run_of_three_letters_or_digits() {
        assert!(has_trigram("meeting"));
        assert!(has_trigram("没问题"));
        assert!(has_trigram("a b abc"));
        assert!(!has_trigram("你好"));
        assert!(!has_trigram("ab cd"));
        assert!(!has_trigram("%%%"));
    }

    #[test]
    fn the_pattern_matches_wildcards_literally() {
        assert_eq!(ilike_pattern("50%_off"), r"%50\%\_off%");
    }
}
