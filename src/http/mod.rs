//! The HTTP surface: `configure` is the whole route table; handlers are thin async
//! functions of extractors that call the service layer and map results to JSON.

mod admin;
mod auth;
mod blocks;
mod body_deadline;
pub mod conversations;
mod errors;
mod friends;
mod groups;
mod health;
mod json;
mod me;
mod observe;
pub mod openapi;
mod uploads;
mod uri_limit;
mod users;
mod web_client;

use actix_web::web;

use crate::{error::ApiError, state::AppState};

pub use body_deadline::body_deadline;
pub use errors::json_error_handlers;
pub use observe::observe_request;
pub use uri_limit::limit_uri;

/// Registers every route and the extractor configuration.
pub fn configure(state: &AppState) -> impl FnOnce(&mut web::ServiceConfig) + use<> {
    let limit = state.config.server.max_request_bytes as usize;
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(errors::json_config(limit))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(errors::query_config())
            .app_data(errors::path_config())
            // HEAD answers like GET without the body (actix drops it), for probes that use it.
            .service(
                web::resource("/healthz").route(web::get().to(health::healthz)).route(web::head().to(health::healthz)),
            )
            .service(
                web::resource("/readyz").route(web::get().to(health::readyz)).route(web::head().to(health::readyz)),
            )
            .service(
                web::resource("/metrics").route(web::get().to(health::metrics)).route(web::head().to(health::metrics)),
            )
            .configure(web_client::routes)
            .service(
                web::scope("/api/v1")
                    .service(web::resource("/auth/register").route(web::post().to(auth::register)))
                    .service(web::resource("/auth/login").route(web::post().to(auth::login)))
                    .service(web::resource("/auth/refresh").route(web::post().to(auth::refresh)))
                    .service(web::resource("/auth/logout").route(web::post().to(auth::logout)))
                    .service(web::resource("/auth/password").route(web::post().to(auth::change_password)))
                    .service(
                        web::resource("/me")
                            .route(web::get().to(me::show_me))
                            .route(web::patch().to(me::update_me))
                            .route(web::delete().to(me::delete_me)),
                    )
                    .service(web::resource("/me/sessions").route(web::get().to(me::list_sessions)))
                    .service(web::resource("/me/sessions/{session_id}").route(web::delete().to(me::revoke_session)))
                    .service(web::resource("/uploads").route(web::post().to(uploads::upload)))
                    .service(web::resource("/uploads/{upload_id}").route(web::get().to(uploads::download)))
                    .service(web::resource("/uploads/{upload_id}/thumbnail").route(web::get().to(uploads::thumbnail)))
                    .service(web::resource("/users").route(web::get().to(users::search_users)))
                    .service(web::resource("/admin/users").route(web::get().to(admin::admin_list_users)))
                    .service(
                        web::resource("/admin/users/{user_id}/deactivate")
                            .route(web::post().to(admin::admin_deactivate_user)),
                    )
                    .service(
                        web::resource("/admin/users/{user_id}/reactivate")
                            .route(web::post().to(admin::admin_reactivate_user)),
                    )
                    .service(
                        web::resource("/admin/users/{user_id}/password")
                            .route(web::post().to(admin::admin_reset_password)),
                    )
                    .service(
                        web::resource("/admin/users/{user_id}/messages")
                            .route(web::delete().to(admin::admin_delete_user_messages)),
                    )
                    .service(
                        web::resource("/admin/groups/{group_id}").route(web::delete().to(admin::admin_disband_group)),
                    )
                    .service(web::resource("/admin/stats").route(web::get().to(admin::admin_stats)))
                    .service(web::resource("/admin/audit").route(web::get().to(admin::admin_audit)))
                    .service(web::resource("/users/{user_id}").route(web::get().to(users::show_user)))
                    .service(
                        web::resource("/users/{user_id}/mutual-friends")
                            .route(web::get().to(friends::list_mutual_friends)),
                    )
                    .service(
                        web::resource("/friend-requests")
                            .route(web::get().to(friends::list_friend_requests))
                            .route(web::post().to(friends::send_friend_request)),
                    )
                    .service(
                        web::resource("/friend-requests/{request_id}/accept")
                            .route(web::post().to(friends::accept_friend_request)),
                    )
                    .service(
                        web::resource("/friend-requests/{request_id}/decline")
                            .route(web::post().to(friends::decline_friend_request)),
                    )
                    .service(
                        web::resource("/friend-requests/{request_id}/cancel")
                            .route(web::post().to(friends::cancel_friend_request)),
                    )
                    .service(web::resource("/friends").route(web::get().to(friends::list_friends)))
                    .service(web::resource("/friends/suggestions").route(web::get().to(friends::list_suggestions)))
                    .service(
                        web::resource("/friends/{user_id}")
                            .route(web::delete().to(friends::remove_friend))
                            .route(web::patch().to(friends::update_friend)),
                    )
                    .service(web::resource("/groups").route(web::post().to(groups::create_group)))
                    .service(
                        web::resource("/groups/{group_id}")
                            .route(web::get().to(groups::show_group))
                            .route(web::patch().to(groups::update_group))
                            .route(web::delete().to(groups::disband_group)),
                    )
                    .service(web::resource("/groups/{group_id}/join").route(web::post().to(groups::join_group)))
                    .service(web::resource("/groups/{group_id}/leave").route(web::post().to(groups::leave_group)))
                    .service(web::resource("/groups/{group_id}/members").route(web::get().to(groups::list_members)))
                    .service(
                        web::resource("/groups/{group_id}/members/{user_id}")
                            .route(web::delete().to(groups::kick_member)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/members/{user_id}/role")
                            .route(web::put().to(groups::set_member_role)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/members/{user_id}/mute")
                            .route(web::put().to(groups::mute_member))
                            .route(web::delete().to(groups::unmute_member)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/transfer").route(web::post().to(groups::transfer_ownership)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/invitations").route(web::post().to(groups::invite_member)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/join-requests")
                            .route(web::get().to(groups::list_join_requests)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/join-requests/{request_id}/approve")
                            .route(web::post().to(groups::approve_join_request)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/join-requests/{request_id}/reject")
                            .route(web::post().to(groups::reject_join_request)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/announcements")
                            .route(web::get().to(groups::list_announcements)),
                    )
                    .service(web::resource("/me/groups").route(web::get().to(groups::list_my_groups)))
                    .service(web::resource("/me/group-invitations").route(web::get().to(groups::list_my_invitations)))
                    .service(
                        web::resource("/group-invitations/{invitation_id}/accept")
                            .route(web::post().to(groups::accept_invitation)),
                    )
                    .service(
                        web::resource("/group-invitations/{invitation_id}/decline")
                            .route(web::post().to(groups::decline_invitation)),
                    )
                    .service(
                        web::resource("/groups/{group_id}/conversation")
                            .route(web::get().to(conversations::group_conversation)),
                    )
                    .service(web::resource("/conversations").route(web::get().to(conversations::list_conversations)))
                    .service(web::resource("/conversations/direct").route(web::post().to(conversations::open_direct)))
                    .service(
                        web::resource("/conversations/{conversation_id}/messages")
                            .route(web::get().to(conversations::list_messages))
                            .route(web::post().to(conversations::send_message)),
                    )
                    .service(
                        web::resource("/conversations/{conversation_id}/messages/{seq}")
                            .route(web::patch().to(conversations::edit_message))
                            .route(web::delete().to(conversations::delete_message)),
                    )
                    .service(
                        web::resource("/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}")
                            .route(web::put().to(conversations::add_reaction))
                            .route(web::delete().to(conversations::remove_reaction)),
                    )
                    .service(
                        web::resource("/conversations/{conversation_id}/read")
                            .route(web::post().to(conversations::mark_read)),
                    )
                    .service(
                        web::resource("/conversations/{conversation_id}/settings")
                            .route(web::patch().to(conversations::update_settings)),
                    )
                    .service(web::resource("/messages/search").route(web::get().to(conversations::search_messages)))
                    .service(
                        web::resource("/conversations/{conversation_id}/receipts")
                            .route(web::get().to(conversations::list_receipts)),
                    )
                    .service(web::resource("/blocks").route(web::get().to(blocks::list_blocks)))
                    .service(
                        web::resource("/blocks/{user_id}")
                            .route(web::put().to(blocks::block_user))
                            .route(web::delete().to(blocks::unblock_user)),
                    ),
            );
    }
}

/// The answer for paths no route matches.
pub async fn no_route() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("not_found", "no resource at this path"))
}
