//! Registration, login, token refresh with rotation and reuse detection, logout,
//! password change and session management.

use time::OffsetDateTime;

use crate::{
    auth::{Authenticated, RefreshToken, token::hash_refresh_token},
    config::DeletedAccountMessages,
    db::{self, sessions::NewSession, users::NewUser, users::UserRow},
    domain::{Nickname, Password, SessionId, UserId, Username},
    error::ApiError,
    events::{Event, Published},
    metrics::OutcomeLabels,
    service::{admin, groups},
    state::AppState,
};

/// What the client says about the device a session is for.
pub struct Device {
    pub name: String,
    pub user_agent: String,
}

/// Tokens handed to a client after login, registration or refresh.
pub struct IssuedTokens {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub access_token: String,
    pub access_expires_in: u64,
    pub refresh_token: String,
}

pub async fn register(
    state: &AppState,
    username: Username,
    password: Password,
    nickname: Option<Nickname>,
    device: &Device,
) -> Result<(UserRow, IssuedTokens), ApiError> {
    let password_hash = state.hasher.hash(&password).await?;
    let nickname = match nickname {
        Some(nickname) => nickname,
        None => Nickname::parse(username.as_str())?,
    };
    let mut tx = state.pool.begin().await?;
    if db::users::is_retired(&mut *tx, username.as_str()).await? {
        return Err(username_taken());
    }
    let user = db::users::insert(
        &mut *tx,
        &NewUser { username: &username, nickname: &nickname, password_hash: &password_hash },
    )
    .await
    .map_err(|error| match db::violated_constraint(&error) {
        Some("users_username_key") => username_taken(),
        _ => error.into(),
    })?;
    let tokens = start_session(state, &mut tx, user.id, device).await?;
    tx.commit().await?;
    Ok((user, tokens))
}

/// A name in use, or held back after its account was deleted: the same answer for
/// both, so registration does not tell which names belonged to deleted accounts.
fn username_taken() -> ApiError {
    ApiError::conflict("username_taken", "this username is already taken")
}

pub fn account_deactivated() -> ApiError {
    ApiError::forbidden("account_deactivated", "this account has been deactivated by the server's administrators")
}

/// Unknown users and wrong passwords get the same error after the same work.
pub async fn login(
    state: &AppState,
    username: &str,
    password: Password,
    device: &Device,
) -> Result<IssuedTokens, ApiError> {
    let credentials = db::users::credentials(&state.pool, username).await?;
    let stored_hash = credentials.as_ref().map(|c| c.password_hash.as_str());
    let verified = state.hasher.verify(&password, stored_hash).await?;
    let user_id = match credentials {
        // Said only to whoever knows the password, so it tells a guesser nothing.
        Some(credentials) if verified && credentials.deactivated => {
            state.metrics.logins.get_or_create(&OutcomeLabels { outcome: "deactivated" }).inc();
            return Err(account_deactivated());
        }
        Some(credentials) if verified => credentials.id,
        _ => {
            state.metrics.logins.get_or_create(&OutcomeLabels { outcome: "invalid_credentials" }).inc();
            return Err(ApiError::unauthorized("invalid_credentials", "wrong username or password"));
        }
    };
    state.metrics.logins.get_or_create(&OutcomeLabels { outcome: "ok" }).inc();
    let mut tx = state.pool.begin().await?;
    let tokens = start_session(state, &mut tx, user_id, device).await?;
    tx.commit().await?;
    Ok(tokens)
}

/// Exchanges a refresh token for new tokens. Each refresh token works once; presenting
/// a used one means it was stolen or replayed, so the whole session is revoked.
pub async fn refresh(state: &AppState, refresh_token: &str) -> Result<IssuedTokens, ApiError> {
    let hash = hash_refresh_token(refresh_token);
    let mut tx = state.pool.begin().await?;
    let Some(token) = db::sessions::lock_refresh_token(&mut *tx, &hash).await? else {
        return Err(ApiError::unauthorized("invalid_refresh_token", "the refresh token is not valid"));
    };
    if token.used {
        db::sessions::revoke(&mut *tx, token.user_id, token.session_id, "refresh_token_reuse").await?;
        tx.commit().await?;
        announce_revoked(state, token.user_id, &[token.session_id]);
        tracing::warn!(user_id = %token.user_id, session_id = %token.session_id, "refresh token reuse; session revoked");
        return Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; the session has been signed out",
        ));
    }
    if !token.session_active {
        return Err(ApiError::unauthorized("session_revoked", "this session has been signed out or has expired"));
    }
    db::sessions::mark_refresh_token_used(&mut *tx, &hash).await?;
    let next = RefreshToken::generate();
    db::sessions::insert_refresh_token(&mut *tx, token.session_id, &next.hash()).await?;
    db::sessions::touch(&mut *tx, token.session_id, session_expiry(state)).await?;
    tx.commit().await?;
    issue(state, token.user_id, token.session_id, next)
}

pub async fn logout(state: &AppState, caller: Authenticated) -> Result<(), ApiError> {
    db::sessions::revoke(&state.pool, caller.user_id, caller.session_id, "logout").await?;
    announce_revoked(state, caller.user_id, &[caller.session_id]);
    Ok(())
}

/// Closes the revoked sessions' sockets (4001) on every instance: the event reaches this
/// instance's hub directly and the others through the relay.
fn announce_revoked(state: &AppState, user: UserId, sessions: &[SessionId]) {
    announce(state, admin::revocations(user, sessions));
}

/// Publishes what an operation collected after its commit. Revoked sessions go into this
/// instance's revocation cache first, so the client's next request here is refused even
/// before the database's notification comes back through the listener.
pub fn announce(state: &AppState, events: Vec<Published>) {
    let revoked = events.iter().filter_map(|published| match published.event {
        Event::SessionRevoked { session_id, .. } => Some(session_id),
        _ => None,
    });
    state.revocations.record(revoked, OffsetDateTime::now_utc());
    state.events.publish_all(events);
}

/// Requires the current password; signs out every other session.
pub async fn change_password(
    state: &AppState,
    caller: Authenticated,
    current: Password,
    new: Password,
) -> Result<(), ApiError> {
    let stored = db::users::password_hash(&state.pool, caller.user_id).await?;
    let verified = state.hasher.verify(&current, stored.as_deref()).await?;
    if !verified {
        return Err(ApiError::forbidden("wrong_password", "the current password is wrong"));
    }
    let new_hash = state.hasher.hash(&new).await?;
    let mut tx = state.pool.begin().await?;
    db::users::set_password_hash(&mut *tx, caller.user_id, &new_hash).await?;
    let revoked = db::sessions::revoke_others(&mut *tx, caller.user_id, caller.session_id, "password_changed").await?;
    tx.commit().await?;
    announce_revoked(state, caller.user_id, &revoked);
    Ok(())
}

/// Deletes the caller's account. The password is asked again, so a stolen access token
/// alone cannot do it. Groups are handed on as when leaving; relations, sessions and
/// the profile go; messages stay under "Deleted user" or are removed, per
/// `GOIM_DELETED_ACCOUNT_MESSAGES`; the username is held back for
/// `GOIM_USERNAME_REUSE_DAYS`.
pub async fn delete_account(state: &AppState, caller: Authenticated, password: Password) -> Result<(), ApiError> {
    let user = caller.user_id;
    let stored = db::users::password_hash(&state.pool, user).await?;
    if !state.hasher.verify(&password, stored.as_deref()).await? {
        return Err(ApiError::forbidden("wrong_password", "the password is wrong"));
    }
    let mut tx = state.pool.begin().await?;
    db::users::lock_for_update(&mut *tx, user).await?;
    let mut announcements = groups::depart_all(&mut tx, user).await?;
    let forgotten = db::account_deletion::forget(&mut tx, user).await?;
    announcements.extend(
        forgotten
            .former_friends
            .iter()
            .map(|&friend| Published { recipients: vec![friend], event: Event::FriendRemoved { user_id: user } }),
    );
    let unreacted = db::messages::remove_reactions_by(&mut tx, user).await?;
    announcements.extend(admin::unreaction_events(&mut tx, &unreacted).await?);
    if state.config.chat.deleted_account_messages == DeletedAccountMessages::Remove {
        let removed = db::messages::tombstone_all_by(&mut tx, user, user).await?;
        announcements.extend(admin::removal_events(&mut tx, &removed, user).await?);
    }
    // After any removal above, so the files of removed messages go too.
    db::uploads::discard_unsent_of(&mut *tx, user).await?;
    db::account_deletion::erase(&mut tx, user, state.config.chat.username_reuse_days).await?;
    tx.commit().await?;
    announcements.extend(admin::revocations(user, &forgotten.sessions));
    announce(state, announcements);
    tracing::info!(user_id = %user, "account deleted");
    Ok(())
}

/// Revokes one of the caller's sessions. Someone else's session id answers exactly
/// like an unknown one.
pub async fn revoke_session(state: &AppState, caller: Authenticated, session: SessionId) -> Result<(), ApiError> {
    if db::sessions::revoke(&state.pool, caller.user_id, session, "revoked_by_user").await? {
        announce_revoked(state, caller.user_id, &[session]);
        Ok(())
    } else {
        Err(ApiError::not_found("session_not_found", "no such active session"))
    }
}

async fn start_session(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user_id: UserId,
    device: &Device,
) -> Result<IssuedTokens, ApiError> {
    if !db::users::lock_active(&mut *tx, user_id).await? {
        return Err(account_deactivated());
    }
    let session_id = db::sessions::insert(
        &mut *tx,
        &NewSession {
            user_id,
            device_name: &device.name,
            user_agent: &device.user_agent,
            expires_at: session_expiry(state),
        },
    )
    .await?;
    let refresh = RefreshToken::generate();
    db::sessions::insert_refresh_token(&mut *tx, session_id, &refresh.hash()).await?;
    issue(state, user_id, session_id, refresh)
}

fn issue(
    state: &AppState,
    user_id: UserId,
    session_id: SessionId,
    refresh: RefreshToken,
) -> Result<IssuedTokens, ApiError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let access_token = state.tokens.issue(user_id, session_id, now).map_err(ApiError::internal)?;
    Ok(IssuedTokens {
        user_id,
        session_id,
        access_token,
        access_expires_in: state.tokens.access_ttl.as_secs(),
        refresh_token: refresh.as_str().to_owned(),
    })
}

fn session_expiry(state: &AppState) -> OffsetDateTime {
    OffsetDateTime::now_utc() + state.config.auth.refresh_token_ttl
}
