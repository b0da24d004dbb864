//! The delivery worker: one task per instance (when webhooks are on), started by
//! [`crate::startup`] and ended by the shutdown token.
//!
//! Each round claims up to [`BATCH`] due deliveries for [`LEASE`], posts them all at once
//! (each request bounded by [`REQUEST_TIMEOUT`]), and settles the round in one
//! transaction: delivered rows are deleted, failed ones rescheduled with backoff, and
//! those out of attempts kept as dead letters. A full round is followed by another at
//! once; otherwise the worker sleeps until the writer nudges it or [`POLL_INTERVAL`]
//! passes (rows queued by other instances, retries coming due). On shutdown, requests
//! still running are abandoned and their rows released for the next worker at once,
//! without counting the attempt.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::Context;
use futures_util::{StreamExt, stream::FuturesUnordered};
use rand::Rng;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Outbox, payload::Event, signature::SigningKey};
use crate::{
    config::WebhookConfig,
    db::{
        self,
        webhooks::{Claimed, Outcomes},
    },
    metrics::{Metrics, OutcomeLabels, StateLabels},
};

/// Deliveries claimed, and posted concurrently, per round.
pub const BATCH: i64 = 32;
/// One request, from connecting to the response's status line.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claim holds its rows: well past a round (its requests run at once, each
/// within [`REQUEST_TIMEOUT`]), so a live worker never has a row taken from under it,
/// while a dead worker's rows come due again this long after it claimed them.
pub const LEASE: Duration = Duration::from_secs(60);
/// The longest wait between the attempts of one delivery.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often the worker looks for due rows without being nudged.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the outbox's size is sampled for `/metrics`.
pub const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);
/// Longest `last_error` kept on a row.
const ERROR_CHARS: usize = 300;

pub struct Worker {
    pool: PgPool,
    client: reqwest::Client,
    key: SigningKey,
    max_attempts: i32,
    first_backoff: Duration,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

impl Worker {
    /// Fails when the HTTP client cannot be built (no TLS backend) or there is no
    /// secret (which `Config::validate` rules out before this).
    pub fn new(pool: PgPool, config: &WebhookConfig, outbox: &Outbox, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let secret =
            config.webhook_secret.as_ref().context("GOIM_WEBHOOK_URLS is set but GOIM_WEBHOOK_SECRET is not")?;
        let key = SigningKey::new(secret.expose().as_bytes()).context("GOIM_WEBHOOK_SECRET cannot key HMAC-SHA256")?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect could take a signed event to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("goim/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the webhook HTTP client")?;
        Ok(Self {
            pool,
            client,
            key,
            max_attempts: i32::try_from(config.webhook_max_attempts).unwrap_or(i32::MAX),
            first_backoff: Duration::from_millis(config.webhook_backoff_ms),
            metrics,
            wake: outbox.wake(),
        })
    }

    /// Delivers until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut failing = false;
        let mut backlog_due = tokio::time::Instant::now();
        loop {
            // Rounds back to back while they come back full. A round watches `stop` itself,
            // so that it can release what it claimed instead of being dropped.
            loop {
                match self.round(&stop).await {
                    Ok(claimed) => {
                        if failing {
                            failing = false;
                            tracing::info!("webhook deliveries recovered");
                        }
                        if claimed < BATCH as usize || stop.is_cancelled() {
                            break;
                        }
                    }
                    Err(error) => {
                        // Logged once per outage, not every poll.
                        if !failing {
                            failing = true;
                            tracing::warn!(%error, "webhook outbox unavailable; deliveries wait");
                        }
                        break;
                    }
                }
            }
            if tokio::time::Instant::now() >= backlog_due {
                backlog_due = tokio::time::Instant::now() + BACKLOG_INTERVAL;
                self.sample_backlog().await;
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// One claim, its posts and its settlement; returns how many rows were claimed.
    async fn round(&self, stop: &CancellationToken) -> sqlx::Result<usize> {
        // A claim is never cut short: one dropped after PostgreSQL committed it would
        // leave its rows waiting out the lease (a minute) instead of released at once.
        if stop.is_cancelled() {
            return Ok(0);
        }
        let claimed = db::webhooks::claim(&self.pool, BATCH, LEASE).await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let mut outcomes = Outcomes::default();
        let mut finished = HashSet::with_capacity(claimed.len());
        {
            let mut posts: FuturesUnordered<_> =
                claimed.iter().map(|row| async move { (row, self.post(row).await) }).collect();
            loop {
                tokio::select! {
                    biased;
                    // Abandoned posts may still have reached their endpoint: their
                    // events go out again (at least once), with the same id.
                    _ = stop.cancelled() => break,
                    next = posts.next() => match next {
                        Some((row, result)) => {
                            finished.insert(row.id);
                            self.judge(row, result, &mut outcomes);
                        }
                        None => break,
                    },
                }
            }
        }
        outcomes.released =
            claimed.iter().filter(|row| !finished.contains(&row.id)).map(|row| (row.id, row.attempts)).collect();
        db::webhooks::settle(&self.pool, &outcomes).await?;
        let count = |outcome: &'static str, n: usize| {
            self.metrics.webhook_deliveries.get_or_create(&OutcomeLabels { outcome }).inc_by(n as u64);
        };
        count("delivered", outcomes.delivered.len());
        count("failed", outcomes.retry.len());
        count("dead", outcomes.dead.len());
        Ok(claimed.len())
    }

    /// Where one attempt leaves its row.
    fn judge(&self, row: &Claimed, result: Result<(), String>, outcomes: &mut Outcomes) {
        match result {
            Ok(()) => outcomes.delivered.push((row.id, row.attempts)),
            Err(error) if row.attempts >= self.max_attempts => {
                tracing::warn!(
                    delivery = row.id,
                    attempts = row.attempts,
                    %error,
                    "webhook delivery failed for the last time; kept as a dead letter"
                );
                outcomes.dead.push((row.id, row.attempts, error));
            }
            Err(error) => {
                tracing::debug!(delivery = row.id, attempts = row.attempts, %error, "webhook delivery failed; will retry");
                let delay = backoff(row.attempts, self.first_backoff, rand::thread_rng().r#gen());
                outcomes.retry.push((row.id, row.attempts, delay, error));
            }
        }
    }

    /// One signed POST; `Err` says why it did not count as delivered (any status but
    /// 2xx, or no answer in time).
    async fn post(&self, row: &Claimed) -> Result<(), String> {
        let event = Event::of(row);
        let body = serde_json::to_vec(&event).map_err(|error| format!("cannot encode the event: {error}"))?;
        let signature = self.key.sign(OffsetDateTime::now_utc().unix_timestamp(), &body);
        let request = self
            .client
            .post(&row.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(super::signature::HEADER, signature)
            .header("Goim-Event-Id", &event.id)
            .header("Goim-Delivery-Attempt", row.attempts.to_string())
            .body(body)
            .send();
        // The client's own timeout covers this too; this bound does not depend on it.
        let response = match tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(1), request).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(describe(error.without_url())),
            Err(_) => return Err("no response in time".into()),
        };
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
    }

    async fn sample_backlog(&self) {
        match db::webhooks::backlog(&self.pool).await {
            Ok(backlog) => {
                let gauge = |state: &'static str, value: i64| {
                    self.metrics.webhook_backlog.get_or_create(&StateLabels { state }).set(value);
                };
                gauge("pending", backlog.pending);
                gauge("dead", backlog.dead);
            }
            Err(error) => tracing::debug!(%error, "cannot sample the webhook outbox"),
        }
    }
}

/// The wait after failed attempt `attempt` (1-based): `first × 2^(attempt−1)`, at most
/// [`MAX_BACKOFF`], of which a random half (`jitter` in 0..1) is taken off, so deliveries
/// that failed together (an endpoint down) do not all come back together.
pub fn backoff(attempt: i32, first: Duration, jitter: f64) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(30);
    let full = first.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    full.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0)
}

/// The error and its causes, capped; the caller has taken the URL out (it may hold
/// credentials, and it is on the row already).
fn describe(error: reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_the_first_wait_up_to_the_cap() {
        let first = Duration::from_secs(1);
        assert_eq!(backoff(1, first, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(2, first, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(5, first, 0.0), Duration::from_secs(16));
        assert_eq!(backoff(20, first, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(i32::MAX, first, 0.0), MAX_BACKOFF);
    }

    #[test]
    fn jitter_takes_off_at_most_half() {
        let first = Duration::from_secs(8);
        assert_eq!(backoff(1, first, 1.0), Duration::from_secs(4));
        assert!(backoff(1, first, 0.5) > Duration::from_secs(4));
        assert_eq!(backoff(1, first, 7.0), Duration::from_secs(4));
    }
}
