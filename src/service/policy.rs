//! Who may read and send in a conversation: the one place these rules live. REST,
//! the WebSocket gateway and the writer all go through it.
//!
//! - Reading: members only. A conversation the caller is not in answers exactly like a
//!   missing one (404), so ids reveal nothing.
//! - Sending: members; in direct conversations no block either way, and friendship when
//!   `GOIM_DIRECT_MESSAGES=friends`; in groups not muted and not disbanded. Membership
//!   is checked again inside the writer's transaction.

use time::OffsetDateTime;

use sqlx::PgPool;

use crate::{
    config::DirectMessagePolicy,
    db::{
        self,
        conversations::{ConversationRow, MemberState, SendContext},
    },
    domain::{ConversationId, Role, UserId},
    error::ApiError,
    state::AppState,
};

/// A member's view of a conversation.
pub struct Access {
    pub conversation: ConversationRow,
    pub member: MemberState,
}

pub async fn readable(pool: &PgPool, id: ConversationId, user: UserId) -> Result<Access, ApiError> {
    let member = db::conversations::member_state(pool, id, user).await?.ok_or_else(conversation_not_found)?;
    let conversation = db::conversations::find(pool, id).await?.ok_or_else(conversation_not_found)?;
    Ok(Access { conversation, member })
}

/// Whether `user` may send to the conversation now, decided from the facts
/// [`db::conversations::send_context`] read in one round trip; returns what the sender
/// may see of the conversation and their group role, if any.
pub fn check_send(
    direct_messages: DirectMessagePolicy,
    context: &SendContext,
    user: UserId,
) -> Result<(Access, Option<Role>), ApiError> {
    let member = context.member().ok_or_else(conversation_not_found)?;
    let access = Access { conversation: context.conversation.clone(), member };
    match (access.conversation.peer_of(user), access.conversation.group_id) {
        (Some(_), _) => {
            direct_allowed(direct_messages, context.blocked_either_way, context.friends)?;
            Ok((access, None))
        }
        (None, Some(_)) => {
            if !context.group_exists {
                return Err(conversation_not_found());
            }
            if context.group_disbanded_at.is_some() {
                return Err(ApiError::Gone {
                    code: "group_disbanded",
                    message: "this group has been disbanded".into(),
                });
            }
            let role = context.group_role.as_deref().and_then(Role::parse).ok_or_else(conversation_not_found)?;
            if context.group_muted_until.is_some_and(|until| until > OffsetDateTime::now_utc()) {
                return Err(ApiError::forbidden("muted", "you are muted in this group"));
            }
            Ok((access, Some(role)))
        }
        (None, None) => Err(conversation_not_found()),
    }
}

/// Whether `a` may talk to `b` directly: never across a block; friendship required
/// unless the server allows direct messages between anyone.
pub async fn check_direct(state: &AppState, a: UserId, b: UserId) -> Result<(), ApiError> {
    let blocked = db::blocks::exists_either_way(&state.pool, a, b).await?;
    let friends = state.config.chat.direct_messages == DirectMessagePolicy::Anyone
        || db::friends::are_friends(&state.pool, a, b).await?;
    direct_allowed(state.config.chat.direct_messages, blocked, friends)
}

fn direct_allowed(policy: DirectMessagePolicy, blocked: bool, friends: bool) -> Result<(), ApiError> {
    if blocked {
        return Err(super::friends::not_allowed());
    }
    if policy == DirectMessagePolicy::Friends && !friends {
        return Err(ApiError::forbidden("not_friends", "you can send direct messages to friends only"));
    }
    Ok(())
}

pub fn conversation_not_found() -> ApiError {
    ApiError::not_found("conversation_not_found", "no such conversation")
}
