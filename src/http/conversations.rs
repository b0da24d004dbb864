//! `/api/v1/conversations*` and `/api/v1/messages/search`: conversations, messages,
//! read markers, reactions, search.

use super::json::Json;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    auth::Authenticated,
    db::conversations::SettingsChange,
    domain::{ConversationId, Emoji, GroupId, MessageInput, MessageView, UserId},
    dto::{AckView, ConversationPage, ConversationView, ErrorResponse, HistoryResponse},
    error::ApiError,
    service::{
        conversations,
        messages::{self, HistoryQuery},
    },
    state::AppState,
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenDirectRequest {
    #[schema(minimum = 1)]
    pub user_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationRef {
    pub conversation_id: i64,
}

/// The direct conversation with a user, created on first use (one per pair, race-free).
/// Only between friends unless the server allows anyone (`GOIM_DIRECT_MESSAGES`);
/// never across a block.
#[utoipa::path(post, path = "/api/v1/conversations/direct", tag = "messages", security(("bearer" = [])),
    request_body = OpenDirectRequest,
    responses(
        (status = 200, body = ConversationRef),
        (status = 403, description = "not_allowed (block), not_friends", body = ErrorResponse),
        (status = 404, description = "user_not_found", body = ErrorResponse),
    ))]
pub async fn open_direct(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: Json<OpenDirectRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = conversations::open_direct(&state, caller.user_id, UserId(body.user_id)).await?;
    Ok(HttpResponse::Ok().json(ConversationRef { conversation_id: id.0 }))
}

/// A group's conversation (members only).
#[utoipa::path(get, path = "/api/v1/groups/{group_id}/conversation", tag = "messages", security(("bearer" = [])),
    params(("group_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = ConversationRef), (status = 404, description = "conversation_not_found", body = ErrorResponse)))]
pub async fn group_conversation(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = conversations::of_group(&state.pool, caller.user_id, GroupId(path.into_inner())).await?;
    Ok(HttpResponse::Ok().json(ConversationRef { conversation_id: id.0 }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConversationListQuery {
    /// List archived conversations instead of the others.
    pub archived: Option<bool>,
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// The caller's conversations: pinned first, then by latest activity, with unread
/// counts and the last message.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "messages", security(("bearer" = [])),
    params(ConversationListQuery),
    responses((status = 200, body = ConversationPage), (status = 400, body = ErrorResponse)))]
pub async fn list_conversations(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<ConversationListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = conversations::list(
        &state.pool,
        caller.user_id,
        query.archived.unwrap_or(false),
        query.cursor.as_deref(),
        query.limit,
    )
    .await?;
    let items = page.items.into_iter().map(ConversationView::from).collect();
    Ok(HttpResponse::Ok().json(ConversationPage { items, next_cursor: page.next_cursor }))
}

/// Send a message. The answer (the ack) comes only after the message is committed;
/// retrying with the same `client_msg_id` returns the original ack (200).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/messages", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1)), request_body = MessageInput,
    responses(
        (status = 201, description = "stored", body = AckView),
        (status = 200, description = "a retry: the original ack", body = AckView),
        (status = 400, description = "validation_failed (body, content, reply_to_seq, mentions), malformed_json", body = ErrorResponse),
        (status = 403, description = "not_allowed (block), not_friends, muted, insufficient_role (@all)", body = ErrorResponse),
        (status = 404, description = "conversation_not_found (also for non-members)", body = ErrorResponse),
        (status = 409, description = "client_msg_id_reused", body = ErrorResponse),
        (status = 410, description = "group_disbanded", body = ErrorResponse),
        (status = 503, description = "overloaded or shutting down; retry with the same client_msg_id", body = ErrorResponse),
    ))]
pub async fn send_message(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<MessageInput>,
) -> Result<HttpResponse, ApiError> {
    let ack = messages::send(&state, caller.user_id, ConversationId(path.into_inner()), body.into_inner()).await?;
    let mut response = if ack.duplicate { HttpResponse::Ok() } else { HttpResponse::Created() };
    Ok(response.json(AckView::from(ack)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Messages before this seq (exclusive); the default is the latest page.
    pub before: Option<i64>,
    /// Messages after this seq (exclusive).
    pub after: Option<i64>,
    /// With `to`: the range `from..=to` (gap filling).
    #[param(minimum = 1)]
    pub from: Option<i64>,
    #[param(minimum = 1)]
    pub to: Option<i64>,
    /// 1–100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A page of history by sequence number.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}/messages", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1), HistoryParams),
    responses((status = 200, body = HistoryResponse), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list_messages(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    query: web::Query<HistoryParams>,
) -> Result<HttpResponse, ApiError> {
    let range = match (query.from, query.to) {
        (Some(from), Some(to)) => Some((from, to)),
        (None, None) => None,
        _ => return Err(ApiError::validation("from", "from and to go together")),
    };
    let page = messages::history(
        &state.pool,
        caller.user_id,
        ConversationId(path.into_inner()),
        HistoryQuery { before: query.before, after: query.after, range, limit: query.limit },
    )
    .await?;
    Ok(HttpResponse::Ok().json(HistoryResponse {
        items: page.messages,
        last_seq: page.last_seq,
        version: page.version,
        has_older: page.has_older,
        has_newer: page.has_newer,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessageRequest {
    /// The new text: not blank, at most `GOIM_MAX_MESSAGE_BYTES` bytes; CRLF is stored
    /// as LF.
    #[schema(
        min_length = 1,
        pattern = "^(?:[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]|\\r\\n)*[^\\s\\u0000-\\u001f\\u007f-\\u009f](?:[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]|\\r\\n)*$"
    )]
    pub body: String,
}

/// Edit your own message within the edit window (default 24 h).
#[utoipa::path(patch, path = "/api/v1/conversations/{conversation_id}/messages/{seq}", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1), ("seq" = i64, Path, minimum = 1)), request_body = EditMessageRequest,
    responses(
        (status = 200, body = MessageView),
        (status = 403, description = "not_your_message, edit_window_passed", body = ErrorResponse),
        (status = 404, description = "message_not_found", body = ErrorResponse),
        (status = 409, description = "message_deleted", body = ErrorResponse),
    ))]
pub async fn edit_message(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
    body: Json<EditMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let (conversation, seq) = path.into_inner();
    let view =
        messages::edit(&state, caller.user_id, ConversationId(conversation), seq, body.into_inner().body).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Recall your own message within the recall window (default 2 min), or remove any
/// message as a group owner or admin. It stays as a tombstone.
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}/messages/{seq}", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1), ("seq" = i64, Path, minimum = 1)),
    responses((status = 204), (status = 403, description = "not_your_message, recall_window_passed", body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn delete_message(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (conversation, seq) = path.into_inner();
    messages::delete(&state, caller.user_id, ConversationId(conversation), seq).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Add a reaction (idempotent).
#[utoipa::path(put, path = "/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1), ("seq" = i64, Path, minimum = 1), ("emoji" = String, Path, description = "Exactly one emoji, percent-encoded (skin tones, keycaps, flags and ZWJ sequences count as one).")),
    responses((status = 204), (status = 400, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn add_reaction(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64, String)>,
) -> Result<HttpResponse, ApiError> {
    let (conversation, seq, emoji) = path.into_inner();
    let emoji = Emoji::parse(&emoji)?;
    messages::react(&state, caller.user_id, ConversationId(conversation), seq, emoji, true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Remove your reaction.
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1), ("seq" = i64, Path, minimum = 1), ("emoji" = String, Path, description = "Exactly one emoji, percent-encoded (skin tones, keycaps, flags and ZWJ sequences count as one).")),
    responses((status = 204), (status = 404, description = "reaction_not_found", body = ErrorResponse)))]
pub async fn remove_reaction(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<(i64, i64, String)>,
) -> Result<HttpResponse, ApiError> {
    let (conversation, seq, emoji) = path.into_inner();
    let emoji = Emoji::parse(&emoji)?;
    messages::react(&state, caller.user_id, ConversationId(conversation), seq, emoji, false).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// Everything up to this seq is read. The marker never moves back.
    #[schema(minimum = 0)]
    pub seq: i64,
}

#[derive(Serialize, ToSchema)]
pub struct MarkReadResponse {
    pub last_read_seq: i64,
}

/// Move your read marker forward.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/read", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1)), request_body = MarkReadRequest,
    responses((status = 200, body = MarkReadResponse), (status = 404, body = ErrorResponse)))]
pub async fn mark_read(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<MarkReadRequest>,
) -> Result<HttpResponse, ApiError> {
    let marker = conversations::mark_read(&state, caller.user_id, ConversationId(path.into_inner()), body.seq).await?;
    Ok(HttpResponse::Ok().json(MarkReadResponse { last_read_seq: marker }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
    pub pinned: Option<bool>,
    /// No notifications for this conversation.
    pub muted: Option<bool>,
    /// Hidden from the main list.
    pub archived: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct SettingsResponse {
    pub pinned: bool,
    pub muted: bool,
    pub archived: bool,
}

/// Your own settings for a conversation.
#[utoipa::path(patch, path = "/api/v1/conversations/{conversation_id}/settings", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1)), request_body = SettingsRequest,
    responses((status = 200, body = SettingsResponse), (status = 404, body = ErrorResponse)))]
pub async fn update_settings(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
    body: Json<SettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = SettingsChange { pinned: body.pinned, muted: body.muted, archived: body.archived };
    let settings =
        conversations::update_settings(&state.pool, caller.user_id, ConversationId(path.into_inner()), change).await?;
    Ok(HttpResponse::Ok().json(SettingsResponse {
        pinned: settings.pinned,
        muted: settings.muted,
        archived: settings.archived,
    }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// 2–100 characters; matched as a case-insensitive substring (works for CJK).
    #[param(min_length = 2, max_length = 100, pattern = "\\S.*\\S")]
    pub q: String,
    /// Limit the search to one conversation.
    #[param(minimum = 1)]
    pub conversation_id: Option<i64>,
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// 1–50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

/// Search messages in your conversations, newest first.
#[utoipa::path(get, path = "/api/v1/messages/search", tag = "messages", security(("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorResponse)))]
pub async fn search_messages(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let page = messages::search(
        &state.pool,
        caller.user_id,
        &query.q,
        query.conversation_id.map(ConversationId),
        query.cursor.as_deref(),
        query.limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(MessagePage { items: page.items, next_cursor: page.next_cursor }))
}

#[derive(Serialize, ToSchema)]
pub struct ReceiptView {
    pub user_id: i64,
    pub last_read_seq: i64,
    pub last_delivered_seq: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ReceiptsResponse {
    pub members: Vec<ReceiptView>,
}

/// Every member's read and delivery markers (group read receipts: a message with
/// `seq ≤ last_read_seq` has been read by that member).
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}/receipts", tag = "messages", security(("bearer" = [])),
    params(("conversation_id" = i64, Path, minimum = 1)),
    responses((status = 200, body = ReceiptsResponse), (status = 404, body = ErrorResponse)))]
pub async fn list_receipts(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let members = conversations::receipts(&state.pool, caller.user_id, ConversationId(path.into_inner())).await?;
    let members = members
        .into_iter()
        .map(|(user, read, delivered)| ReceiptView {
            user_id: user.0,
            last_read_seq: read,
            last_delivered_seq: delivered,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ReceiptsResponse { members }))
}
