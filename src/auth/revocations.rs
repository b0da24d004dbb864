//! The revocation cache: which sessions were revoked (or deleted with their account)
//! within the last access-token lifetime, kept in memory so that authorising a request
//! takes no database connection of its own (issue #15: "one acquire per request").
//!
//! Access tokens are short-lived JWTs naming their session. A token is refused when its
//! session is revoked; it cannot outlive its session's expiry (the request that issues a
//! token moves the expiry further by the longer refresh-token lifetime), and no session
//! of a deactivated or deleted account is left unrevoked (`db::users::lock_active`).
//! So the only fact a valid token needs checked is "not revoked since it was issued",
//! and only revocations younger than the token lifetime matter.
//!
//! Fed by `crate::relay`'s listener: a trigger on `sessions` notifies every revocation
//! and deletion at commit, whatever code path did it
//! (`migrations/20261203000017_session_revocation_notify.sql`). Notifications sent while
//! nobody listens are lost, so the cache is **authoritative** only between a load of
//! the recent revocations made after LISTEN succeeded and the moment the listener loses
//! its connection. Otherwise [`Revocations::verdict`] answers `Unknown`, and the caller
//! asks the database as before — correctness first.
//!
//! On the instance that revokes, the service records the revocation here before it
//! answers, so the next request of the same client is refused at once; other instances
//! learn it from the notification, as fast as they learn to close the session's
//! sockets.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use time::OffsetDateTime;

use crate::domain::{SessionId, UserId};

/// Kept beyond the access-token lifetime for the clock skew between instances and the
/// database, the `exp` leeway, and a token signed just after a refresh commits while a
/// revocation waited for its lock.
const MARGIN: Duration = Duration::from_secs(60);

/// What the cache knows about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Revoked (or its account deleted) within the window.
    Revoked,
    /// Not revoked: the cache is authoritative and holds no revocation for it.
    Active,
    /// The cache is not authoritative right now; ask the database.
    Unknown,
}

/// A cloneable handle to one instance's cache.
#[derive(Clone)]
pub struct Revocations {
    inner: Arc<Mutex<Inner>>,
    window: Duration,
}

#[derive(Default)]
struct Inner {
    authoritative: bool,
    /// When each revocation was recorded; older than the window, it is forgotten.
    sessions: HashMap<SessionId, OffsetDateTime>,
    deleted_users: HashMap<UserId, OffsetDateTime>,
}

impl Revocations {
    /// A cache for access tokens that live `access_ttl`; not authoritative until loaded.
    pub fn new(access_ttl: Duration) -> Self {
        Self { inner: Arc::default(), window: access_ttl + MARGIN }
    }

    /// How far back a load must reach.
    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn verdict(&self, user: UserId, session: SessionId) -> Verdict {
        let inner = self.lock();
        if inner.sessions.contains_key(&session) || inner.deleted_users.contains_key(&user) {
            Verdict::Revoked
        } else if inner.authoritative {
            Verdict::Active
        } else {
            Verdict::Unknown
        }
    }

    pub fn is_authoritative(&self) -> bool {
        self.lock().authoritative
    }

    /// Records revoked sessions: from a notification, or from the service that revoked
    /// them (before it answers its client).
    pub fn record(&self, sessions: impl IntoIterator<Item = SessionId>, now: OffsetDateTime) {
        let mut inner = self.lock();
        for session in sessions {
            inner.sessions.insert(session, now);
        }
        inner.prune(now, self.window);
    }

    /// Takes what a load found (everything revoked within the window, read after LISTEN
    /// succeeded) and becomes authoritative. Entries recorded meanwhile are kept.
    pub fn loaded(&self, sessions: &[SessionId], deleted_users: &[UserId], now: OffsetDateTime) {
        let mut inner = self.lock();
        for &session in sessions {
            inner.sessions.entry(session).or_insert(now);
        }
        for &user in deleted_users {
            inner.deleted_users.entry(user).or_insert(now);
        }
        inner.prune(now, self.window);
        inner.authoritative = true;
    }

    /// The listener lost its connection: notifications may be missed from now on.
    pub fn lost(&self) {
        self.lock().authoritative = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The maps are valid after any panic mid-update (each insert is whole).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn prune(&mut self, now: OffsetDateTime, window: Duration) {
        let oldest = now - window;
        self.sessions.retain(|_, at| *at > oldest);
        self.deleted_users.retain(|_, at| *at > oldest);
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn session() -> SessionId {
        SessionId(Uuid::new_v4())
    }

    #[test]
    fn an_unloaded_cache_knows_nothing_but_what_it_was_told() {
        let cache = Revocations::new(Duration::from_secs(900));
        let (revoked, other) = (session(), session());
        cache.record([revoked], OffsetDateTime::now_utc());
        assert_eq!(cache.verdict(UserId(1), revoked), Verdict::Revoked);
        assert_eq!(cache.verdict(UserId(1), other), Verdict::Unknown);
    }

    #[test]
    fn a_lost_listener_makes_the_cache_ask_the_database_again() {
        let cache = Revocations::new(Duration::from_secs(900));
        let now = OffsetDateTime::now_utc();
        let (revoked, other) = (session(), session());
        cache.loaded(&[revoked], &[UserId(7)], now);
        assert_eq!(cache.verdict(UserId(1), other), Verdict::Active);
        assert_eq!(cache.verdict(UserId(1), revoked), Verdict::Revoked);
        assert_eq!(cache.verdict(UserId(7), other), Verdict::Revoked, "a deleted account's sessions");
        cache.lost();
        assert_eq!(cache.verdict(UserId(1), other), Verdict::Unknown);
        assert_eq!(cache.verdict(UserId(1), revoked), Verdict::Revoked);
    }

    #[test]
    fn revocations_older_than_a_token_lifetime_are_forgotten() {
        let cache = Revocations::new(Duration::from_secs(900));
        let start = OffsetDateTime::now_utc();
        let (old, recent) = (session(), session());
        cache.loaded(&[], &[], start);
        cache.record([old], start);
        cache.record([recent], start + Duration::from_secs(900));
        assert_eq!(cache.verdict(UserId(1), old), Verdict::Revoked, "kept for the margin past the lifetime");
        cache.record([], start + Duration::from_secs(900) + MARGIN);
        assert_eq!(cache.verdict(UserId(1), old), Verdict::Active);
        assert_eq!(cache.verdict(UserId(1), recent), Verdict::Revoked);
    }
}
