//! The `users` table.

use sqlx::{Acquire, PgExecutor, Postgres};
use time::{Date, OffsetDateTime};

use crate::domain::{AvatarUrl, Bio, Birthday, Nickname, UserId, Username};

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub birthday: Option<Date>,
    pub bio: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

pub struct NewUser<'a> {
    pub username: &'a Username,
    pub nickname: &'a Nickname,
    pub password_hash: &'a str,
}

pub async fn insert(db: impl PgExecutor<'_>, new: &NewUser<'_>) -> sqlx::Result<UserRow> {
    sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (username, nickname, password_hash) VALUES ($1, $2, $3)
           RETURNING id AS "id: UserId", username, nickname, avatar_url, birthday, bio, created_at, updated_at"#,
        new.username.as_str(),
        new.nickname.as_str(),
        new.password_hash
    )
    .fetch_one(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: UserId) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(UserRow, r#"SELECT id AS "id: UserId", username, nickname, avatar_url, birthday, bio, created_at, updated_at FROM users WHERE id = $1"#, id.0)
        .fetch_optional(db)
        .await
}

/// What login needs to know about an account.
#[derive(Debug)]
pub struct Credentials {
    pub id: UserId,
    pub password_hash: String,
    pub deactivated: bool,
}

/// The credentials for a username, compared case-insensitively; deleted accounts have none.
pub async fn credentials(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        r#"SELECT id AS "id: UserId", password_hash, deactivated_at IS NOT NULL AS "deactivated!"
             FROM users WHERE lower(username) = lower($1) AND deleted_at IS NULL"#,
        username
    )
    .fetch_optional(db)
    .await
}

/// Whether `id` is an account others can still reach (it exists and was not deleted):
/// the check before a friend request, an invitation, a block or a new conversation.
pub async fn reachable(db: impl PgExecutor<'_>, id: UserId) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL) AS "reachable!""#,
        id.0
    )
    .fetch_one(db)
    .await
}

/// Whether `id` may sign in (not deactivated, not deleted), holding a share lock on the
/// account until the transaction ends. A new session is inserted under this lock, so a
/// deactivation or deletion (which update the row) runs either before it (and the login
/// is refused here) or after its commit (and revokes the new session too): no session
/// of a closed account is ever left unrevoked, which the revocation cache relies on.
pub async fn lock_active(db: impl PgExecutor<'_>, id: UserId) -> sqlx::Result<bool> {
    let found = sqlx::query_scalar!(
        "SELECT id FROM users WHERE id = $1 AND deactivated_at IS NULL AND deleted_at IS NULL FOR SHARE",
        id.0
    )
    .fetch_optional(db)
    .await?;
    Ok(found.is_some())
}

/// Locks `id`'s row for an update later in the transaction. Account deletion takes it
/// first, so a login waiting in [`lock_active`] sees the account deleted rather than
/// adding a session after the deletion removed the others.
pub async fn lock_for_update(db: impl PgExecutor<'_>, id: UserId) -> sqlx::Result<()> {
    sqlx::query_scalar!("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE", id.0).fetch_optional(db).await?;
    Ok(())
}

/// Whether `username` belonged to a deleted account and is still held back.
pub async fn is_retired(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM retired_usernames
                           WHERE username_hash = sha256(convert_to(lower($1), 'UTF8'))
                             AND available_at > now()) AS "retired!""#,
        username
    )
    .fetch_one(db)
    .await
}

pub async fn password_hash(db: impl PgExecutor<'_>, id: UserId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("SELECT password_hash FROM users WHERE id = $1", id.0).fetch_optional(db).await
}

pub async fn set_password_hash(db: impl PgExecutor<'_>, id: UserId, hash: &str) -> sqlx::Result<()> {
    sqlx::query!("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", id.0, hash)
        .execute(db)
        .await
        .map(|_| ())
}

/// Records when the user was last connected.
pub async fn set_last_seen(db: impl PgExecutor<'_>, id: UserId, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!("UPDATE users SET last_seen_at = $2 WHERE id = $1", id.0, at).execute(db).await.map(|_| ())
}

/// A partial profile update: `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub nickname: Option<Nickname>,
    pub avatar_url: Option<Option<AvatarUrl>>,
    pub birthday: Option<Option<Birthday>>,
    pub bio: Option<Bio>,
}

pub async fn update_profile(db: impl PgExecutor<'_>, id: UserId, change: &ProfileChange) -> sqlx::Result<UserRow> {
    // One statement for any subset of fields: a flag per field says whether to set it.
    sqlx::query_as!(
        UserRow,
        r#"UPDATE users SET
            nickname   = COALESCE($2, nickname),
            avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END,
            birthday   = CASE WHEN $5 THEN $6 ELSE birthday END,
            bio        = COALESCE($7, bio),
            updated_at = now()
         WHERE id = $1
         RETURNING id AS "id: UserId", username, nickname, avatar_url, birthday, bio, created_at, updated_at"#,
        id.0,
        change.nickname.as_ref().map(Nickname::as_str),
        change.avatar_url.is_some(),
        change.avatar_url.as_ref().and_then(|url| url.as_ref().map(AvatarUrl::as_str)),
        change.birthday.is_some(),
        change.birthday.and_then(|b| b.map(Birthday::date)),
        change.bio.as_ref().map(Bio::as_str)
    )
    .fetch_one(db)
    .await
}

#[derive(Debug, Clone)]
pub struct SearchHit {
    pub id: UserId,
    pub username: String,
    pub nickname: String,
    pub avatar_url: Option<String>,
    pub score: f32,
}

/// How many candidates each way of matching contributes before ranking. Search
/// returns the best matches, not every match: a query such as "a" matches most users.
pub const SEARCH_CANDIDATES: i64 = 200;

/// How far a search reaches. Scores put every tier's matches above the next tier's
/// (exact username 4, username prefix 3, nickname prefix 2, substring 1, similar 0, each
/// plus a similarity below 1), so a page filled by one tier is final and the costlier
/// tiers after it are skipped. Each tier runs the ones before it too, and takes its
/// candidates only from its own band (a substring branch skips prefix matches, a
/// similarity branch both): otherwise a later tier could bring in prefix matches beyond
/// the prefix branches' [`SEARCH_CANDIDATES`], ranked among rows an earlier page already
/// passed, and the pages would depend on the page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchTier {
    /// Username and nickname prefixes, from B-trees: well under a millisecond.
    Prefix,
    /// Substrings (the GiST trigram indexes answer `LIKE '%…%'` too); queries of 3+ characters.
    Substring,
    /// Trigram similarity for typos (GiST, nearest first); queries of 3+ characters,
    /// and not when the query is someone's complete username.
    Similar,
}

impl SearchTier {
    /// The tiers worth running for `query`, cheapest first: substrings and trigrams of
    /// one or two characters would match most users and no index narrows them.
    pub fn for_query(query: &str) -> &'static [SearchTier] {
        if query.chars().count() >= 3 {
            &[SearchTier::Prefix, SearchTier::Substring, SearchTier::Similar]
        } else {
            &[SearchTier::Prefix]
        }
    }
}

/// The values [`SEARCH_SQL`] takes for one tier of one query, before the cursor and
/// the page size.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchArguments {
    pub query: String,
    pub prefix: String,
    pub contains: Option<String>,
    pub similar: bool,
}

impl SearchArguments {
    pub fn new(query: &str, tier: SearchTier) -> Self {
        let escaped = escape_like(query);
        Self {
            query: query.to_owned(),
            prefix: format!("{escaped}%"),
            contains: (tier != SearchTier::Prefix).then(|| format!("%{escaped}%")),
            similar: tier == SearchTier::Similar,
        }
    }
}

/// The user-search statement: $1 query, $2 prefix pattern, $3 substring pattern (NULL
/// skips substrings), $4/$5 the keyset cursor (score, id) or NULLs, $6 the page size,
/// $7 [`SEARCH_CANDIDATES`], $8 whether to look for similar names. Public so the
/// benchmark can `EXPLAIN` exactly this.
pub const SEARCH_SQL: &str = include_str!("sql/user_search.sql");

/// Users whose username or nickname matches `query` (already lower-cased), best first:
/// exact username, username prefix, nickname prefix, substring, then trigram similarity
/// (typos). Keyset-paginated on `(score, id)`.
///
/// Each way of matching takes at most [`SEARCH_CANDIDATES`] rows from an index that
/// yields them in a useful order and stops there (prefix: B-tree range; similarity:
/// GiST nearest-first), so the cost does not grow with how many users match; and the
/// tiers run cheapest first, stopping at the first that fills the page.
///
/// Also says at which tier it stopped.
pub async fn search<'a>(
    db: impl Acquire<'a, Database = Postgres>,
    query: &str,
    after: Option<(f32, UserId)>,
    limit: i64,
) -> sqlx::Result<(Vec<SearchHit>, SearchTier)> {
    let tiers = SearchTier::for_query(query);
    // Every tier on one connection: a search queues for the pool once.
    let mut db = db.acquire().await?;
    let mut tier = tiers[0];
    let mut hits = Vec::new();
    for &next in tiers {
        tier = next;
        hits = search_one_tier(&mut *db, &SearchArguments::new(query, tier), after, limit).await?;
        if hits.len() as i64 >= limit {
            break;
        }
    }
    Ok((hits, tier))
}

async fn search_one_tier(
    db: impl PgExecutor<'_>,
    arguments: &SearchArguments,
    after: Option<(f32, UserId)>,
    limit: i64,
) -> sqlx::Result<Vec<SearchHit>> {
    sqlx::query_file_as!(
        SearchHit,
        "src/db/sql/user_search.sql",
        arguments.query,
        arguments.prefix,
        arguments.contains,
        after.map(|(score, _)| score),
        after.map(|(_, id)| id.0),
        limit,
        SEARCH_CANDIDATES,
        arguments.similar
    )
    .fetch_all(db)
    .await
}

/// Makes `%`, `_` and `\` in user input match literally in a LIKE pattern.
pub fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_a_query_are_escaped() {
        assert_eq!(escape_like("a_b%c\\"), "a\\_b\\%c\\\\");
    }
}
