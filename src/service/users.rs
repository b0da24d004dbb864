//! Profiles and user search.

use super::page::{self, Page};
use sqlx::PgPool;

use crate::{
    db::{self, users::ProfileChange, users::SearchHit, users::UserRow},
    domain::UserId,
    error::ApiError,
};

pub const SEARCH_MAX_LIMIT: i64 = 50;
pub const SEARCH_MAX_QUERY_CHARS: usize = 64;

pub async fn profile(pool: &PgPool, id: UserId) -> Result<UserRow, ApiError> {
    db::users::find(pool, id).await?.ok_or_else(|| ApiError::not_found("user_not_found", "no such user"))
}

pub async fn update_profile(pool: &PgPool, id: UserId, change: &ProfileChange) -> Result<UserRow, ApiError> {
    Ok(db::users::update_profile(pool, id, change).await?)
}

pub async fn search(pool: &PgPool, query: &str, limit: i64, cursor: Option<&str>) -> Result<Page<SearchHit>, ApiError> {
    let query = query.trim().to_lowercase();
    let chars = query.chars().count();
    if chars == 0 || chars > SEARCH_MAX_QUERY_CHARS {
        return Err(ApiError::validation("q", format!("must be 1–{SEARCH_MAX_QUERY_CHARS} characters")));
    }
    let limit = page::limit(Some(limit), SEARCH_MAX_LIMIT)?;
    let after = cursor.map(decode_cursor).transpose()?;
    let hits = db::users::search(pool, &query, after, limit + 1).await?.0;
    Ok(page::paginate(hits, limit, |hit| format!("{}:{}", hit.score, hit.id)))
}

fn decode_cursor(cursor: &str) -> Result<(f32, UserId), ApiError> {
    let text = page::decode(cursor)?;
    let (score, id) = text.split_once(':').ok_or_else(page::invalid_cursor)?;
    let score: f32 = score.parse().map_err(|_| page::invalid_cursor())?;
    let id: i64 = id.parse().map_err(|_| page::invalid_cursor())?;
    if !score.is_finite() {
        return Err(page::invalid_cursor());
    }
    Ok((score, UserId(id)))
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn a_score_cursor_round_trips_exactly() {
        let score = 2.333_333_3_f32;
        let cursor = URL_SAFE_NO_PAD.encode(format!("{score}:42"));
        let (decoded, id) = decode_cursor(&cursor).unwrap();
        assert_eq!(decoded.to_bits(), score.to_bits());
        assert_eq!(id, UserId(42));
    }

    #[test]
    fn a_forged_cursor_is_rejected() {
        for bad in ["", "!!!", &URL_SAFE_NO_PAD.encode("NaN:1"), &URL_SAFE_NO_PAD.encode("1.0")] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
