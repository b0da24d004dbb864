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
//!    the GIN trigram index over blocks of consecutive messages (migration 18, built by
//!    `crate::search_index` off the send path) finds the blocks of the caller's
//!    conversations that match; their messages, and each conversation's messages not yet
//!    in a block, are then checked one by one. Cheap for rare words, which is when step 1
//!    did not suffice.
//!    For shorter needles (one- and two-character CJK words: no trigram to look up),
//!    **Everything**: step 1's statement over all of the caller's conversations and
//!    messages — bounded by what the caller can see rather than by the whole table.

use sqlx::{Acquire, PgConnection, Postgres};
use time::OffsetDateTime;

use super::messages::MessageRow;
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

/// The bounded scan (step 1, and unbounded, "everything"). Public so the benchmark can
/// `EXPLAIN` exactly this.
pub const RECENT_SQL: &str = include_str!("sql/message_search_recent.sql");
/// The trigram step. Public so the benchmark can `EXPLAIN` exactly this.
pub const TRIGRAM_SQL: &str = include_str!("sql/message_search_trigram.sql");

/// A row of the bounded scan: a message and the scan's horizon.
struct RecentHit {
    conversation_id: ConversationId,
    seq: i64,
    version: i64,
    sender_id: UserId,
    client_msg_id: uuid::Uuid,
    kind: String,
    body: Option<String>,
    content: Option<serde_json::Value>,
    reply_to_seq: Option<i64>,
    mentions: Vec<i64>,
    mention_all: bool,
    created_at: OffsetDateTime,
    edited_at: Option<OffsetDateTime>,
    deleted_at: Option<OffsetDateTime>,
    horizon: Option<OffsetDateTime>,
}

impl From<RecentHit> for MessageRow {
    fn from(hit: RecentHit) -> Self {
        Self {
            conversation_id: hit.conversation_id,
            seq: hit.seq,
            version: hit.version,
            sender_id: hit.sender_id,
            client_msg_id: hit.client_msg_id,
            kind: hit.kind,
            body: hit.body,
            content: hit.content,
            reply_to_seq: hit.reply_to_seq,
            mentions: hit.mentions,
            mention_all: hit.mention_all,
            created_at: hit.created_at,
            edited_at: hit.edited_at,
            deleted_at: hit.deleted_at,
        }
    }
}

/// Messages containing `needle`, newest first (see the module documentation), and
/// which statement answered.
pub async fn search<'a>(
    db: impl Acquire<'a, Database = Postgres>,
    user: UserId,
    needle: &str,
    conversation: Option<ConversationId>,
    after: Option<SearchCursor>,
    limit: i64,
) -> sqlx::Result<(Vec<MessageRow>, SearchPlan)> {
    let pattern = ilike_pattern(needle);
    // Every tier on one connection: a search queues for the pool once.
    let mut db = db.acquire().await?;
    let recent =
        bounded_scan(&mut db, user, &pattern, conversation, after, limit, RECENT_CONVERSATIONS, RECENT_WINDOW).await?;
    if is_exact_page(&recent, limit) {
        return Ok((recent.into_iter().map(MessageRow::from).collect(), SearchPlan::Recent));
    }
    if has_trigram(needle) {
        let rows = sqlx::query_file_as!(
            MessageRow,
            "src/db/sql/message_search_trigram.sql",
            user.0,
            pattern,
            conversation.map(|c| c.0),
            after.map(|a| a.0),
            after.map(|a| a.1.0),
            after.map(|a| a.2),
            limit
        )
        .fetch_all(&mut *db)
        .await?;
        return Ok((rows, SearchPlan::Trigram));
    }
    let everything =
        bounded_scan(&mut db, user, &pattern, conversation, after, limit, i64::MAX / 4, i64::MAX / 4).await?;
    Ok((everything.into_iter().map(MessageRow::from).collect(), SearchPlan::Everything))
}

#[allow(clippy::too_many_arguments)]
async fn bounded_scan(
    db: &mut PgConnection,
    user: UserId,
    pattern: &str,
    conversation: Option<ConversationId>,
    after: Option<SearchCursor>,
    limit: i64,
    conversations: i64,
    window: i64,
) -> sqlx::Result<Vec<RecentHit>> {
    sqlx::query_file_as!(
        RecentHit,
        "src/db/sql/message_search_recent.sql",
        user.0,
        pattern,
        conversation.map(|c| c.0),
        after.map(|a| a.0),
        after.map(|a| a.1.0),
        after.map(|a| a.2),
        limit,
        conversations,
        window
    )
    .fetch_all(db)
    .await
}

/// Indexes up to `per_conversation` not-yet-indexed messages of each of `conversations`
/// into search blocks (migration 18), skipping conversations another transaction is
/// indexing or rebuilding. Returns how many were indexed, and those still behind.
pub async fn index_blocks(
    db: impl sqlx::PgExecutor<'_>,
    conversations: &[i64],
    per_conversation: i64,
) -> sqlx::Result<(i64, Vec<i64>)> {
    let row = sqlx::query!(
        r#"SELECT indexed AS "indexed!", behind AS "behind!" FROM message_search_index($1, $2)"#,
        conversations,
        per_conversation
    )
    .fetch_one(db)
    .await?;
    Ok((row.indexed, row.behind))
}

/// Up to `max` conversations with messages not yet in a search block.
pub async fn behind(db: impl sqlx::PgExecutor<'_>, max: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(r#"SELECT message_search_behind AS "id!" FROM message_search_behind($1)"#, max)
        .fetch_all(db)
        .await
}

/// Merges the search blocks' trigram index's pending list (see `crate::search_index`);
/// returns how many pending pages were merged.
pub async fn merge_pending_list(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT gin_clean_pending_list('message_search_blocks_trgm'::regclass) AS "pages!""#)
        .fetch_one(db)
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
        Some(last) if hits.len() as i64 >= limit => last.horizon.is_none_or(|horizon| last.created_at > horizon),
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
