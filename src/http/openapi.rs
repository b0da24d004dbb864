//! The REST half of the OpenAPI document, generated from the handlers' annotations so
//! it cannot drift from the code; `crate::openapi` adds the WebSocket half.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{admin, auth, blocks, conversations, friends, groups, me, uploads, users};
use crate::dto;

#[derive(OpenApi)]
#[openapi(
    info(title = "GOIM REST API", description = "Accounts, profiles and messaging. Errors always have the shape {\"error\":{\"code\",\"message\"}}. Access tokens: `Authorization: Bearer <jwt>` (15 min by default); renew with POST /api/v1/auth/refresh."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout, auth::change_password,
        me::show_me, me::update_me, me::delete_me, me::list_sessions, me::revoke_session,
        users::show_user, users::search_users,
        friends::send_friend_request, friends::list_friend_requests, friends::accept_friend_request,
        friends::decline_friend_request, friends::cancel_friend_request, friends::list_friends,
        friends::remove_friend, friends::update_friend, friends::list_mutual_friends, friends::list_suggestions,
        blocks::block_user, blocks::unblock_user, blocks::list_blocks,
        groups::create_group, groups::show_group, groups::update_group, groups::disband_group,
        groups::join_group, groups::leave_group, groups::list_members, groups::kick_member,
        groups::set_member_role, groups::mute_member, groups::unmute_member, groups::transfer_ownership,
        groups::invite_member, groups::accept_invitation, groups::decline_invitation,
        groups::list_my_invitations, groups::list_my_groups, groups::list_join_requests,
        groups::approve_join_request, groups::reject_join_request, groups::list_announcements,
        conversations::open_direct, conversations::group_conversation, conversations::list_conversations,
        conversations::send_message, conversations::list_messages, conversations::edit_message,
        conversations::delete_message, conversations::add_reaction, conversations::remove_reaction,
        conversations::mark_read, conversations::update_settings, conversations::search_messages,
        conversations::list_receipts,
        uploads::upload, uploads::download, uploads::thumbnail,
        admin::admin_list_users, admin::admin_deactivate_user, admin::admin_reactivate_user, admin::admin_reset_password,
        admin::admin_delete_user_messages, admin::admin_disband_group, admin::admin_stats, admin::admin_audit,
    ),
    components(schemas(dto::ErrorResponse, dto::ErrorObject)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, login, token refresh, logout"),
        (name = "profile", description = "The caller's own profile and sessions"),
        (name = "users", description = "Other users' public profiles and search"),
        (name = "friends", description = "Friend requests, friendships, mutual friends, suggestions"),
        (name = "blocks", description = "Blocking users"),
        (name = "groups", description = "Groups, members, roles, join requests, invitations"),
        (name = "messages", description = "Conversations, messages, read markers, reactions, search"),
        (name = "uploads", description = "Files and images stored in PostgreSQL, sent in messages of kind image or file"),
        (name = "realtime", description = "The WebSocket (docs/protocol.md): tickets and the handshake"),
        (name = "admin", description = "Server administration, for accounts granted the server-admin flag with `goim admin grant` (403 not_admin for anyone else); every action is audited"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
            );
        }
    }
}

/// The document as pretty-printed JSON.
pub fn document() -> serde_json::Result<String> {
    ApiDoc::openapi().to_pretty_json()
}
