//! Keyset pagination shared by every list: bounded limits and opaque cursors.
//!
//! A cursor is the sort key of the last row of a page, base64url-encoded so clients
//! treat it as opaque; the next page starts strictly after it, so pages stay stable
//! while rows are added.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::ApiError;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// A page of items and the cursor of the next one, if any.
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// The requested page size, defaulted and bounded to `1..=max`.
pub fn limit(requested: Option<i64>, max: i64) -> Result<i64, ApiError> {
    let limit = requested.unwrap_or(DEFAULT_LIMIT.min(max));
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::validation("limit", format!("must be 1–{max}")))
    }
}

/// Cuts a result fetched with `limit + 1` rows down to `limit` and derives the next
/// cursor from the last row kept.
pub fn paginate<T>(mut rows: Vec<T>, limit: i64, key_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| URL_SAFE_NO_PAD.encode(key_of(last)))
    } else {
        None
    };
    Page { items: rows, next_cursor }
}

/// The sort key inside a cursor.
pub fn decode(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD.decode(cursor).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or_else(invalid_cursor)
}

/// A cursor holding a single integer key.
pub fn decode_i64(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor.map(|c| decode(c)?.parse::<i64>().map_err(|_| invalid_cursor())).transpose()
}

pub fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "the cursor is not one this server issued")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_keeps_limit_rows_and_points_after_the_last() {
        let page = paginate(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page.items, [1, 2]);
        assert_eq!(decode_i64(page.next_cursor.as_deref()).unwrap(), Some(2));
        let last = paginate(vec![1, 2], 2, |n| n.to_string());
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn limits_outside_the_bounds_are_refused() {
        assert_eq!(limit(None, 100).unwrap(), DEFAULT_LIMIT);
        assert!(limit(Some(0), 100).is_err());
        assert!(limit(Some(101), 100).is_err());
    }

    #[test]
    fn a_garbage_cursor_is_refused() {
        assert!(decode_i64(Some("@@")).is_err());
        assert!(decode_i64(Some(&URL_SAFE_NO_PAD.encode("abc"))).is_err());
    }
}
