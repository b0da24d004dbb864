//! What a user may do in a conversation: the one place these rules live. REST, the
//! WebSocket gateway and the writer all go through it.
//!
//! - Viewing (history, receipts, search): members only. A conversation the caller is
//!   not in answers exactly like a missing one (404), so ids reveal nothing.
//! - Every [`Action`] (send, edit, recall, react, typing, read, delivered) reaches the
//!   other members, so each follows the rules of sending: members only; in direct
//!   conversations no block either way, and friendship when
//!   `GOIM_DIRECT_MESSAGES=friends`; in groups not disbanded (410). A muted group member
//!   may still recall, read and confirm delivery, but not put anything new in front of
//!   the others (send, edit, react, typing). Membership is checked again inside the
//!   writer's transaction.

use time::OffsetDateTime;

use sqlx::PgConnection;

use crate::{
    config::DirectMessagePolicy,
    db::{
        self,
        conversations::{ConversationContext, ConversationRow, MemberState},
    },
    domain::{ConversationId, Role, UserId},
    error::ApiError,
};

/// A member's view of a conversation.
pub struct Access {
    pub conversation: ConversationRow,
    pub member: MemberState,
}

/// What the policy allowed: the member's view and, in a group, their role.
pub struct Allowed {
    pub access: Access,
    pub role: Option<Role>,
}

/// Something a member does in a conversation that the other members see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Send,
    Edit,
    Recall,
    React,
    Typing,
    Read,
    Delivered,
}

impl Action {
    /// Whether the action puts something new in front of the others, which a mute stops.
    fn speaks(self) -> bool {
        matches!(self, Action::Send | Action::Edit | Action::React | Action::Typing)
    }
}

/// Whether `user` may read the conversation, on the caller's connection: a read that
/// goes on to fetch messages does it over the same one.
pub async fn readable(db: &mut PgConnection, id: ConversationId, user: UserId) -> Result<Access, ApiError> {
    let member = db::conversations::member_state(&mut *db, id, user).await?.ok_or_else(conversation_not_found)?;
    let conversation = db::conversations::find(&mut *db, id).await?.ok_or_else(conversation_not_found)?;
    Ok(Access { conversation, member })
}

/// Whether `user` may do `action` in the conversation now (one round trip), on the
/// caller's connection: the request goes on to act over the same one.
pub async fn authorize(
    db: &mut PgConnection,
    direct_messages: DirectMessagePolicy,
    user: UserId,
    id: ConversationId,
    action: Action,
) -> Result<Allowed, ApiError> {
    let context = db::conversations::context(&mut *db, id, user, None).await?.ok_or_else(conversation_not_found)?;
    check(direct_messages, &context, user, action)
}

/// [`authorize`] decided from facts already read with [`db::conversations::context`].
pub fn check(
    direct_messages: DirectMessagePolicy,
    context: &ConversationContext,
    user: UserId,
    action: Action,
) -> Result<Allowed, ApiError> {
    let member = context.member().ok_or_else(conversation_not_found)?;
    let access = Access { conversation: context.conversation.clone(), member };
    match (access.conversation.peer_of(user), access.conversation.group_id) {
        (Some(_), _) => {
            if context.peer_deleted && action.speaks() {
                return Err(ApiError::Gone {
                    code: "account_deleted",
                    message: "the other person deleted their account".into(),
                });
            }
            direct_allowed(direct_messages, context.blocked_either_way, context.friends)?;
            Ok(Allowed { access, role: None })
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
            if action.speaks() && context.group_muted_until.is_some_and(|until| until > OffsetDateTime::now_utc()) {
                return Err(ApiError::forbidden("muted", "you are muted in this group"));
            }
            Ok(Allowed { access, role: Some(role) })
        }
        (None, None) => Err(conversation_not_found()),
    }
}

/// Whether `a` may open a direct conversation with `b`: the rules of sending. On the
/// caller's connection.
pub async fn check_direct(
    db: &mut PgConnection,
    direct_messages: DirectMessagePolicy,
    a: UserId,
    b: UserId,
) -> Result<(), ApiError> {
    let blocked = db::blocks::exists_either_way(&mut *db, a, b).await?;
    let friends = direct_messages == DirectMessagePolicy::Anyone || db::friends::are_friends(&mut *db, a, b).await?;
    direct_allowed(direct_messages, blocked, friends)
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
