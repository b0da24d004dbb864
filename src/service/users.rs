//! Profiles and user search.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    db::{self, users::ProfileChange, users::SearchHit, users::UserRow},
    domain::UserId,
    error::ApiError,
    state::AppState,
};

pub const SEARCH_MAX_LIMIT: i64 = 50;
pub const SEARCH_MAX_QUERY_CHARS: usize = 64;

pub async fn profile(state: &AppState, id: UserId) -> Result<UserRow, ApiError> {
    db::users::find(&state.pool, id).await?.ok_or_else(|| ApiError::not_found("user_not_found", "no such user"))
}

pub async fn update_profile(state: &AppState, id: UserId, change: &ProfileChange) -> Result<UserRow, ApiError> {
    Ok(db::users::update_profile(&state.pool, id, change).await?)
}

/// A page of search results and the cursor of the next page, if any.
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    pub next_cursor: Option<String>,
}

pub async fn search(state: &AppState, query: &str, limit: i64, cursor: Option<&str>) -> Result<SearchPage, ApiError> {
    let query = query.trim().to_lowercase();
    let chars = query.chars().count();
    if chars == 0 || chars > SEARCH_MAX_QUERY_CHARS {
        return Err(ApiError::validation("q", format!("must be 1–{SEARCH_MAX_QUERY_CHARS} characters")));
    }
    if !(1..=SEARCH_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation("limit", format!("must be 1–{SEARCH_MAX_LIMIT}")));
    }
    let after = cursor.map(decode_cursor).transpose()?;
    // One extra row tells whether another page exists.
    let mut hits = db::users::search(&state.pool, &query, after, limit + 1).await?;
    let next_cursor = if hits.len() as i64 > limit {
        hits.truncate(limit as usize);
        hits.last().map(|last| encode_cursor(last.score, last.id))
    } else {
        None
    };
    Ok(SearchPage { hits, next_cursor })
}

fn encode_cursor(score: f32, id: UserId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{score}:{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(f32, UserId), ApiError> {
    let invalid = || ApiError::bad_request("invalid_cursor", "the cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (score, id) = text.split_once(':').ok_or_else(invalid)?;
    let score: f32 = score.parse().map_err(|_| invalid())?;
    let id: i64 = id.parse().map_err(|_| invalid())?;
    if !score.is_finite() {
        return Err(invalid());
    }
    Ok((score, UserId(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_exactly() {
        let score = 2.333_333_3_f32;
        let cursor = encode_cursor(score, UserId(42));
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
