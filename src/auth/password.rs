//! Argon2id hashing with OWASP's parameters (19 MiB, t=2, p=1), run on the blocking
//! pool and bounded by a semaphore: each hash holds 19 MiB, so unbounded concurrency
//! would let a login flood exhaust memory.

use std::sync::Arc;

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString, rand_core::OsRng},
};
use tokio::sync::{OnceCell, Semaphore};

use crate::domain::Password;

/// 19 MiB memory, 2 passes, 1 lane: OWASP's Password Storage Cheat Sheet minimum.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the user does not exist, so an unknown username costs
    /// the same time as a wrong password.
    dummy_hash: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    /// `concurrency` hashes at most run at once.
    pub fn new(concurrency: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy_hash: Arc::new(OnceCell::new()) }
    }

    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let plain = password.expose().to_owned();
        self.run_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()?
                .hash_password(plain.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
        })
        .await
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown user) the
    /// dummy hash is checked instead and the answer is `false`.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> anyhow::Result<bool> {
        let (hash, known) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash().await?.to_owned(), false),
        };
        let plain = password.expose().to_owned();
        let matches = self
            .run_blocking(move || {
                let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("stored hash is malformed: {e}"))?;
                Ok(argon2()?.verify_password(plain.as_bytes(), &parsed).is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    async fn dummy_hash(&self) -> anyhow::Result<&str> {
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

    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("password hasher closed")?;
        tokio::task::spawn_blocking(work).await.context("password hashing task failed")?
    }
}

fn argon2() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
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
    async fn an_unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("anything-at-all".into(), "password").unwrap();
        assert!(!hasher.verify(&password, None).await.unwrap());
    }
}
