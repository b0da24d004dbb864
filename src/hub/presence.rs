//! Presence: online while at least one socket is connected (on this instance),
//! offline `grace` after the last one closes, so a quick reconnect does not flap.
//! `last_seen_at` is written once, when the user goes offline — never per heartbeat.
//! Changes go to the user's friends (blocking ends a friendship, so blocked users
//! never see presence).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{db, domain::UserId, events::Event, events::EventBus};

#[derive(Clone)]
pub struct Presence {
    pool: PgPool,
    events: EventBus,
    tasks: TaskTracker,
    /// The main runtime: sockets live on actix worker threads whose runtimes end before
    /// shutdown finishes, and presence timers must outlive them.
    runtime: tokio::runtime::Handle,
    grace: Duration,
    /// Users whose last socket closed, with the timer that will make them offline.
    pending_offline: Arc<Mutex<HashMap<UserId, CancellationToken>>>,
    online: Arc<Mutex<HashMap<UserId, ()>>>,
}

impl Presence {
    /// Must be called inside the main runtime.
    pub fn new(pool: PgPool, events: EventBus, tasks: TaskTracker, grace: Duration) -> Self {
        let runtime = tokio::runtime::Handle::current();
        Self { pool, events, tasks, runtime, grace, pending_offline: Arc::default(), online: Arc::default() }
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.online.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&user)
    }

    /// The user's first socket opened.
    pub fn connected(&self, user: UserId) {
        let pending = self.pending_offline.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
        if let Some(timer) = pending {
            // Reconnected within the grace period: still online, nothing to announce.
            timer.cancel();
            return;
        }
        let newly_online = self.online.lock().unwrap_or_else(|p| p.into_inner()).insert(user, ()).is_none();
        if newly_online {
            let (pool, events) = (self.pool.clone(), self.events.clone());
            self.tasks.spawn_on(async move { announce(&pool, &events, user, true, None).await }, &self.runtime);
        }
    }

    /// The user's last socket closed.
    pub fn disconnected(&self, user: UserId) {
        let timer = CancellationToken::new();
        self.pending_offline.lock().unwrap_or_else(|p| p.into_inner()).insert(user, timer.clone());
        let this = self.clone();
        self.tasks.spawn_on(
            async move {
                tokio::select! {
                    _ = timer.cancelled() => {}
                    _ = tokio::time::sleep(this.grace) => {
                        let still_pending = {
                            let mut pending = this.pending_offline.lock().unwrap_or_else(|p| p.into_inner());
                            match pending.get(&user) {
                                Some(current) if !current.is_cancelled() => { pending.remove(&user); true }
                                _ => false,
                            }
                        };
                        if still_pending {
                            this.online.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
                            let now = OffsetDateTime::now_utc();
                            if let Err(error) = db::users::set_last_seen(&this.pool, user, now).await {
                                tracing::warn!(%error, "cannot store last_seen_at");
                            }
                            announce(&this.pool, &this.events, user, false, Some(now)).await;
                        }
                    }
                }
            },
            &self.runtime,
        );
    }
}

async fn announce(pool: &PgPool, events: &EventBus, user: UserId, online: bool, last_seen_at: Option<OffsetDateTime>) {
    match db::friends::ids_of(pool, user).await {
        Ok(friends) if !friends.is_empty() => {
            events.publish(friends, Event::Presence { user_id: user, online, last_seen_at });
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot load friends for a presence change"),
    }
}
