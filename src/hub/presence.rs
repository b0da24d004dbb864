//! Presence: a user is online while any live instance holds a socket of theirs, and
//! offline `grace` after the last one closes, so a quick reconnect (to this or another
//! instance) does not flap.
//!
//! Each instance records which users it holds in the database (`db::presence`) and
//! heartbeats its own row; an instance that stops heartbeating (killed, partitioned) is
//! reaped by whichever peer notices first, which announces its users offline unless they
//! are connected elsewhere. `last_seen_at` is written when a user goes offline, never per
//! heartbeat. Changes go to the user's friends through the event bus, so the relay takes
//! them to every instance (blocking ends a friendship, so blocked users never see
//! presence).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::PgPool;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

use crate::{
    db::{self, presence::Transition},
    domain::UserId,
    events::{Event, EventBus},
};

/// Heartbeats an instance may miss before peers count it as dead.
const MISSED_HEARTBEATS: u32 = 3;

#[derive(Clone)]
pub struct Presence {
    pool: PgPool,
    events: EventBus,
    tasks: TaskTracker,
    /// The main runtime: sockets live on actix worker threads whose runtimes end before
    /// shutdown finishes, and presence timers must outlive them.
    runtime: tokio::runtime::Handle,
    instance: Uuid,
    grace: Duration,
    heartbeat: Duration,
    /// Users whose last local socket closed, with the timer that will take them offline.
    pending_offline: Arc<Mutex<HashMap<UserId, CancellationToken>>>,
    /// Users with a socket on this instance (or within their grace period).
    here: Arc<Mutex<HashSet<UserId>>>,
    /// Users whose last change could not be recorded (database trouble); the heartbeat
    /// settles them again.
    unsettled: Arc<Mutex<HashSet<UserId>>>,
    /// Held from recording a change until it is announced: two changes of one user
    /// (a close and a quick reopen) are then announced in the order they were recorded,
    /// never "online, offline" for a user who is connected. Changes are rare; one lane
    /// for the instance is enough.
    announcing: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
}

impl Presence {
    /// Must be called inside the main runtime. Pending offline timers end with `stop`:
    /// a stopping instance hands its users to the peers' reaper instead (see [`Self::run`]).
    pub fn new(
        pool: PgPool,
        events: EventBus,
        tasks: TaskTracker,
        grace: Duration,
        heartbeat: Duration,
        stop: CancellationToken,
    ) -> Self {
        Self {
            pool,
            events,
            tasks,
            runtime: tokio::runtime::Handle::current(),
            instance: Uuid::new_v4(),
            grace,
            heartbeat,
            pending_offline: Arc::default(),
            here: Arc::default(),
            unsettled: Arc::default(),
            announcing: Arc::default(),
            stop,
        }
    }

    fn is_here(&self, user: UserId) -> bool {
        self.here.lock().unwrap_or_else(|p| p.into_inner()).contains(&user)
    }

    /// The user's first socket on this instance opened.
    pub fn connected(&self, user: UserId) {
        let pending = self.pending_offline.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
        if let Some(timer) = pending {
            // Reconnected within the grace period: still online, nothing to announce.
            timer.cancel();
            return;
        }
        if self.here.lock().unwrap_or_else(|p| p.into_inner()).insert(user) {
            let this = self.clone();
            self.tasks.spawn_on(async move { this.settle_one(user).await }, &self.runtime);
        }
    }

    /// The user's last socket on this instance closed.
    pub fn disconnected(&self, user: UserId) {
        let timer = CancellationToken::new();
        self.pending_offline.lock().unwrap_or_else(|p| p.into_inner()).insert(user, timer.clone());
        let this = self.clone();
        self.tasks.spawn_on(
            async move {
                tokio::select! {
                    _ = timer.cancelled() => {}
                    _ = this.stop.cancelled() => {}
                    _ = tokio::time::sleep(this.grace) => {
                        let still_pending = {
                            let mut pending = this.pending_offline.lock().unwrap_or_else(|p| p.into_inner());
                            match pending.get(&user) {
                                Some(current) if !current.is_cancelled() => { pending.remove(&user); true }
                                _ => false,
                            }
                        };
                        if still_pending {
                            this.here.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
                            this.settle_one(user).await;
                        }
                    }
                }
            },
            &self.runtime,
        );
    }

    /// Records in the database whether this instance holds `users` (as of now) and
    /// announces whatever changed for everyone. Users whose change could not be
    /// recorded are kept for the next heartbeat to settle again.
    async fn settle(&self, users: &[UserId]) -> sqlx::Result<()> {
        let _in_order = self.announcing.lock().await;
        match db::presence::settle(&self.pool, self.instance, users, |user| self.is_here(user)).await {
            Ok(transitions) => {
                self.announce(transitions).await;
                Ok(())
            }
            Err(error) => {
                self.unsettled.lock().unwrap_or_else(|p| p.into_inner()).extend(users.iter().copied());
                Err(error)
            }
        }
    }

    /// [`Self::settle`] for one user, from a socket event: a failure is logged here.
    async fn settle_one(&self, user: UserId) {
        if let Err(error) = self.settle(&[user]).await {
            tracing::warn!(%error, "cannot record presence; the next heartbeat retries");
        }
    }

    async fn announce(&self, transitions: Vec<Transition>) {
        for Transition { user, online, last_seen_at } in transitions {
            match db::friends::ids_of(&self.pool, user).await {
                Ok(friends) if !friends.is_empty() => {
                    self.events.publish(friends, Event::Presence { user_id: user, online, last_seen_at });
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot load friends for a presence change"),
            }
        }
    }

    /// Heartbeats this instance's row and reaps dead peers until `stop`, then hands the
    /// instance's users off: its row expires `grace` later, so users who reconnect
    /// elsewhere by then never flap, and the others go offline through the peers' (or the
    /// next start's) reaper.
    pub async fn run(self) {
        let ttl = self.heartbeat * MISSED_HEARTBEATS;
        let mut ticks = tokio::time::interval(self.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let beat = async {
                let registered = db::presence::heartbeat(&self.pool, self.instance, ttl).await?;
                // Users whose last change failed to record; and, on the first beat or
                // after peers reaped this instance while it was cut off (its rows are
                // gone), every user it holds.
                let mut users = std::mem::take(&mut *self.unsettled.lock().unwrap_or_else(|p| p.into_inner()));
                if !registered {
                    users.extend(self.here.lock().unwrap_or_else(|p| p.into_inner()).iter().copied());
                }
                if !users.is_empty() {
                    self.settle(&users.into_iter().collect::<Vec<_>>()).await?;
                }
                let _in_order = self.announcing.lock().await;
                let reaped = db::presence::reap(&self.pool).await?;
                for instance_id in reaped.crashed {
                    tracing::warn!(%instance_id, "a peer instance stopped heartbeating; every socket told to resync");
                    self.events.publish(Vec::new(), Event::InstanceLost { instance_id });
                }
                self.announce(reaped.offline).await;
                Ok::<_, sqlx::Error>(())
            };
            match beat.await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("presence heartbeat recovered");
                }
                Ok(()) => {}
                // Logged once per outage, not every beat.
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "presence heartbeat failed; peers expire this instance if it lasts");
                }
                Err(_) => {}
            }
        }
        if let Err(error) = db::presence::hand_off(&self.pool, self.instance, self.grace).await {
            tracing::warn!(%error, "cannot hand presence off; peers expire this instance by its heartbeat");
        }
    }
}
