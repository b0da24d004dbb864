//! Argon2id hashing with OWASP's parameters (19 MiB, t=2, p=1), run on the blocking
//! pool and bounded twice:
//!
//! - At most `concurrency` hashes run at once (one per core is enough to keep every core
//!   busy); a request that waits longer than [`QUEUE_TIMEOUT`] for its turn gets
//!   [`HashError::Busy`] (503) instead of queueing without end.
//! - Each running hash works in one of `concurrency` memory areas allocated once and
//!   reused. Allocating 19 MiB per hash let the allocator keep every area a burst of
//!   logins ever touched: 132 registrations took a fresh server from 13 MB to 1.26 GB
//!   of resident memory, which stayed.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString, rand_core::OsRng},
};
use tokio::sync::{OnceCell, Semaphore};

use crate::{domain::Password, error::ApiError};

/// 19 MiB memory, 2 passes, 1 lane: OWASP's Password Storage Cheat Sheet minimum.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// Longest wait for a hashing slot before the request is refused with 503.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("every password hashing slot stayed busy")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<HashError> for ApiError {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Busy => ApiError::Unavailable(anyhow::anyhow!("{error}")),
            HashError::Failed(cause) => ApiError::internal(cause),
        }
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    /// One memory area per permit; a hash takes one and gives it back.
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
    /// Verified against when the user does not exist, so an unknown username costs
    /// the same time as a wrong password.
    dummy_hash: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    /// `concurrency` hashes at most run at once; their memory is allocated on first use.
    pub fn new(concurrency: usize) -> Self {
        Self::with_queue_timeout(concurrency, QUEUE_TIMEOUT)
    }

    /// Like [`Self::new`], refusing after `queue_timeout` in the queue.
    pub fn with_queue_timeout(concurrency: usize, queue_timeout: Duration) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            queue_timeout,
            areas: Arc::new(Mutex::new(Vec::with_capacity(concurrency))),
            dummy_hash: Arc::new(OnceCell::new()),
        }
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let plain = password.expose().to_owned();
        self.run_blocking(move |memory| {
            let salt = SaltString::generate(&mut OsRng);
            let hash =
                hash_in(memory, Algorithm::Argon2id, Version::V0x13, params()?, plain.as_bytes(), salt.as_salt())?;
            Ok(hash.to_string())
        })
        .await
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown user) the
    /// dummy hash is checked instead and the answer is `false`.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> Result<bool, HashError> {
        let (hash, known) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash().await?.to_owned(), false),
        };
        let plain = password.expose().to_owned();
        let matches = self
            .run_blocking(move |memory| {
                let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash is malformed: {e}"))?;
                let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
                    anyhow::bail!("stored hash has no salt or no output");
                };
                let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash parameters: {e}"))?;
                let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("{e}"))?;
                let version =
                    parsed.version.map_or(Ok(Version::V0x13), Version::try_from).map_err(|e| anyhow::anyhow!("{e}"))?;
                let params = argon2::ParamsBuilder::new()
                    .m_cost(params.m_cost())
                    .t_cost(params.t_cost())
                    .p_cost(params.p_cost())
                    .output_len(expected.len())
                    .build()
                    .map_err(|e| anyhow::anyhow!("stored hash parameters: {e}"))?;
                let computed = hash_in(memory, algorithm, version, params, plain.as_bytes(), salt)?;
                // `Output` compares in constant time.
                Ok(computed.hash == Some(expected))
            })
            .await?;
        Ok(known && matches)
    }

    async fn dummy_hash(&self) -> Result<&str, HashError> {
        self.dummy_hash
            .get_or_try_init(|| async {
                let random: String = {
                    use rand::{Rng, distributions::Alphanumeric};
                    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
                };
                let password = Password::parse_any(random, "password").map_err(|e| anyhow::anyhow!("{e}"))?;
                self.hash(&password).await
            })
            .await
            .map(String::as_str)
    }

    /// Runs `work` on the blocking pool with a memory area, once a slot is free.
    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = match tokio::time::timeout(self.queue_timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(anyhow::anyhow!("password hasher closed").into()),
            Err(_) => return Err(HashError::Busy),
        };
        let areas = self.areas.clone();
        let mut memory = areas.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
        let outcome = tokio::task::spawn_blocking(move || {
            let result = work(&mut memory);
            areas.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
            result
        })
        .await;
        match outcome {
            Ok(result) => result.map_err(HashError::Failed),
            Err(error) => Err(anyhow::anyhow!("password hashing task failed: {error}").into()),
        }
    }
}

/// The Argon2 hash of `password` with `salt`, computed in `memory` (grown if the
/// parameters need more), as a PHC string.
fn hash_in<'a>(
    memory: &mut Vec<Block>,
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: Salt<'a>,
) -> anyhow::Result<PasswordHash<'a>> {
    let argon = Argon2::new(algorithm, version, params.clone());
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let output = Output::init_with(params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN), |out| {
        argon.hash_password_into_with_memory(password, salt_bytes, out, &mut memory[..]).map_err(Into::into)
    })
    .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow::anyhow!("{e}"))?,
        salt: Some(salt),
        hash: Some(output),
    })
}

fn params() -> anyhow::Result<Params> {
    Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password_and_uses_owasp_parameters() {
        let hasher = PasswordHasher::new(2);
        let password = Password::parse("correct horse".into(), "password").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let wrong = Password::parse("wrong horse".into(), "password").unwrap();
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_match_the_argon2_crates_own_hashing_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("same horse".into(), "password").unwrap();
        // Ours verifies with the crate's verifier, and the crate's hash verifies with ours
        // (also one with other parameters, needing more memory than the reused area).
        let ours = hasher.hash(&password).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        let standard = Argon2::new(Algorithm::Argon2id, Version::V0x13, params().unwrap());
        assert!(standard.verify_password(b"same horse", &parsed).is_ok());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = standard.hash_password(b"same horse", &salt).unwrap().to_string();
        assert!(hasher.verify(&password, Some(&theirs)).await.unwrap());
        let bigger = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(32 * 1024, 1, 1, None).unwrap());
        let theirs = bigger.hash_password(b"same horse", &salt).unwrap().to_string();
        assert!(hasher.verify(&password, Some(&theirs)).await.unwrap());
        let wrong = Password::parse("other horse".into(), "password").unwrap();
        assert!(!hasher.verify(&wrong, Some(&theirs)).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_instead_of_waiting_forever() {
        let hasher = PasswordHasher::with_queue_timeout(1, Duration::from_millis(20));
        let _held = hasher.permits.clone().acquire_owned().await.unwrap();
        let password = Password::parse("queued horse".into(), "password").unwrap();
        assert!(matches!(hasher.hash(&password).await, Err(HashError::Busy)));
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("anything-at-all".into(), "password").unwrap();
        assert!(!hasher.verify(&password, None).await.unwrap());
    }
}
