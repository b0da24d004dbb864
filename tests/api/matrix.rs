//! The authorisation matrix: every REST operation of the OpenAPI document and every
//! WebSocket request type, each tried by every kind of caller (owner, admin, member,
//! muted member, kicked member, blocked user, unfriended user, non-member, another user,
//! anonymous, expired token) against a fixture world, with the expected outcome written
//! down cell by cell in one table ([`rows`]).
//!
//! - A new operation without a row fails [`every_operation_has_a_row_and_every_row_an_operation`].
//! - Every row that changes anything runs on a fresh world, so no row can depend on
//!   another; rows that only read (GET, and the WebSocket reads) share one world, and
//!   every one of their cells must leave its stored state exactly as it found it. Inside
//!   a row the cells expected to be refused run first (each on the untouched world, and
//!   each must leave the stored state as it was); the cells expected to succeed run
//!   after them. Rows whose successes would spoil each other (two moderators removing
//!   the same member) give every success after the first a world of its own.
//! - All mismatches are collected and reported together, one line per cell.

use std::{
    collections::BTreeSet,
    fmt,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use goim::{
    auth::{RefreshToken, TokenKeys},
    config::DirectMessagePolicy,
    domain::{SessionId, UserId},
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, http::HeaderValue};
use uuid::Uuid;

use crate::support::{
    TEST_PASSWORD, TestApp, TestUser, befriend, call, open_direct, send_text, spawn_app_with, test_config,
};

// ---------------------------------------------------------------------------------------
// Actors and expectations
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    /// Owns the group; friends with `Member`; blocked `Blocked`, unfriended `Unfriended`.
    Owner,
    Admin,
    /// A plain member of the group and the owner's friend, with a direct conversation.
    Member,
    /// A group member muted for an hour.
    Muted,
    /// Was in the group, spoke and reacted, then was kicked.
    Kicked,
    /// Was the owner's friend with a direct conversation, then the owner blocked them.
    Blocked,
    /// Was the owner's friend with a direct conversation, then the owner ended the friendship.
    Unfriended,
    /// Not in the group; has sent the owner a friend request and holds an invitation to the group.
    NonMember,
    /// Signed in, and related to nobody.
    Another,
    /// No token at all.
    Anonymous,
    /// The owner's session, presented with a correctly signed access token whose `exp` has passed.
    Expired,
}

use Actor::*;

const ACTORS: [Actor; 11] =
    [Owner, Admin, Member, Muted, Kicked, Blocked, Unfriended, NonMember, Another, Anonymous, Expired];
/// The actors with a user of their own in the world (and so a valid access token).
const SIGNED_IN: [Actor; 9] = [Owner, Admin, Member, Muted, Kicked, Blocked, Unfriended, NonMember, Another];
/// Everyone currently in the group.
const IN_GROUP: [Actor; 4] = [Owner, Admin, Member, Muted];

/// What one actor must get from one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Any 2xx (REST), `ok: true` (WebSocket), 101 (the upgrade).
    Ok,
    /// Success, and the answer shows the row's marker (a message, an announcement, a user).
    Sees,
    /// Success, and the answer does not show the row's marker: nothing leaks.
    Blind,
    /// This status (REST; WebSocket replies carry only the code) and error code.
    Refused(u16, &'static str),
}

impl Expect {
    fn refused(self) -> bool {
        matches!(self, Expect::Refused(..))
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Ok => write!(f, "success"),
            Expect::Sees => write!(f, "success showing the marker"),
            Expect::Blind => write!(f, "success without the marker"),
            Expect::Refused(status, code) => write!(f, "{status} {code}"),
        }
    }
}

fn unauthorized(code: &'static str) -> Expect {
    Expect::Refused(401, code)
}
fn bad_request(code: &'static str) -> Expect {
    Expect::Refused(400, code)
}
fn forbidden(code: &'static str) -> Expect {
    Expect::Refused(403, code)
}
fn not_found(code: &'static str) -> Expect {
    Expect::Refused(404, code)
}
fn conflict(code: &'static str) -> Expect {
    Expect::Refused(409, code)
}

/// One row's expectations, one per actor.
#[derive(Debug, Clone)]
struct Cells([Expect; ACTORS.len()]);

impl Cells {
    /// Every signed-in actor gets `expect`; a missing or expired token is refused first.
    fn signed_in(expect: Expect) -> Self {
        let mut cells = [expect; ACTORS.len()];
        cells[Anonymous as usize] = unauthorized("missing_token");
        cells[Expired as usize] = unauthorized("token_expired");
        Self(cells)
    }

    /// An operation that needs no account: everyone succeeds, whatever token they send.
    fn public() -> Self {
        Self([Expect::Ok; ACTORS.len()])
    }

    fn with(mut self, actors: &[Actor], expect: Expect) -> Self {
        for actor in actors {
            self.0[*actor as usize] = expect;
        }
        self
    }

    fn get(&self, actor: Actor) -> Expect {
        self.0[actor as usize]
    }

    /// Successes must also show the row's marker.
    fn seeing(mut self) -> Self {
        for cell in &mut self.0 {
            if *cell == Expect::Ok {
                *cell = Expect::Sees;
            }
        }
        self
    }
}

/// `actors` see the marker; every other signed-in actor gets a success without it.
fn shown_to(actors: &[Actor]) -> Cells {
    Cells::signed_in(Expect::Blind).with(actors, Expect::Sees)
}

/// Group operations for the members with `roles`; other members get `others`, everyone
/// outside the group `not_a_member`.
fn group_op(roles: &[Actor], others: Expect) -> Cells {
    Cells::signed_in(forbidden("not_a_member")).with(&IN_GROUP, others).with(roles, Expect::Ok)
}

/// Which conversation a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The group's conversation, for everyone.
    Group,
    /// The caller's direct conversation with the owner if they have one (the owner's is
    /// with `Member`); callers without one try the owner's with `Member`.
    Direct,
    /// The owner's direct conversation with the user the owner blocked, for everyone:
    /// the blocker is held to the block as well.
    BlockedPair,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Group => "group",
            Kind::Direct => "direct",
            Kind::BlockedPair => "blocked pair",
        }
    }

    /// Who may still read the conversation's history.
    fn readers(self) -> &'static [Actor] {
        match self {
            Kind::Group => &IN_GROUP,
            Kind::Direct => &[Owner, Member, Blocked, Unfriended],
            Kind::BlockedPair => &[Owner, Blocked],
        }
    }
}

/// The policy classes of src/service/policy.rs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Reading (history, receipts) and one's own settings: members only, nothing else.
    View,
    /// Puts something new in front of the others (send, edit, react, typing): stopped by
    /// a block, an ended friendship and a mute.
    Speak,
    /// Recall, read, delivered: the rules of sending, except that a mute allows them.
    Quiet,
}

/// What each actor gets for an operation of class `act` on a conversation of `kind`.
fn conversation(kind: Kind, act: Act) -> Cells {
    let outsider = not_found("conversation_not_found");
    match kind {
        Kind::Group => {
            let muted = if act == Act::Speak { forbidden("muted") } else { Expect::Ok };
            Cells::signed_in(outsider).with(&IN_GROUP, Expect::Ok).with(&[Muted], muted)
        }
        Kind::Direct => {
            let (blocked, unfriended) = match act {
                Act::View => (Expect::Ok, Expect::Ok),
                Act::Speak | Act::Quiet => (forbidden("not_allowed"), forbidden("not_friends")),
            };
            Cells::signed_in(outsider)
                .with(&[Owner, Member], Expect::Ok)
                .with(&[Blocked], blocked)
                .with(&[Unfriended], unfriended)
        }
        Kind::BlockedPair => {
            let either = if act == Act::View { Expect::Ok } else { forbidden("not_allowed") };
            Cells::signed_in(outsider).with(&[Owner, Blocked], either)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// A REST operation, named exactly as in the OpenAPI document.
    Rest(Method, &'static str),
    /// `GET /api/v1/ws`, the WebSocket upgrade.
    Upgrade,
    /// A WebSocket request type.
    Ws(&'static str),
}

impl Op {
    /// The (method, path) under which the OpenAPI document lists the operation.
    fn documented_as(&self) -> Option<(String, String)> {
        match self {
            Op::Rest(method, path) => Some((method.as_str().to_owned(), (*path).to_owned())),
            Op::Upgrade => Some(("GET".into(), "/api/v1/ws".into())),
            Op::Ws(_) => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Rest(method, path) => write!(f, "{method} {path}"),
            Op::Upgrade => write!(f, "GET /api/v1/ws (upgrade)"),
            Op::Ws(kind) => write!(f, "ws:{kind}"),
        }
    }
}

/// How one actor's request is built: path parameters, query, body (REST) or fields
/// (WebSocket), and the marker that `Sees` and `Blind` look for.
#[derive(Debug, Default)]
struct Fill {
    params: Vec<(&'static str, String)>,
    query: String,
    body: Option<Value>,
    marker: String,
}

impl Fill {
    fn param(mut self, name: &'static str, value: impl ToString) -> Self {
        self.params.push((name, value.to_string()));
        self
    }
    fn query(mut self, query: impl Into<String>) -> Self {
        self.query = query.into();
        self
    }
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn marker(mut self, marker: impl Into<String>) -> Self {
        self.marker = marker.into();
        self
    }
}

type FillFn = Box<dyn Fn(&World, Actor) -> Fill>;

/// One operation against one target. Without `fill` the request has no parameters or
/// body; without `expect` every signed-in actor must succeed.
struct Row {
    op: Op,
    /// Tells rows of one operation apart ("group", "someone else's message", …).
    variant: &'static str,
    fill: FillFn,
    cells: Cells,
    /// Every success after the first gets a world of its own.
    isolate_successes: bool,
}

impl Row {
    fn new(op: Op) -> Self {
        Self {
            op,
            variant: "",
            fill: Box::new(|_, _| Fill::default()),
            cells: Cells::signed_in(Expect::Ok),
            isolate_successes: false,
        }
    }
    fn variant(mut self, variant: &'static str) -> Self {
        self.variant = variant;
        self
    }
    fn fill(mut self, fill: impl Fn(&World, Actor) -> Fill + 'static) -> Self {
        self.fill = Box::new(fill);
        self
    }
    fn expect(mut self, cells: Cells) -> Self {
        self.cells = cells;
        self
    }
    fn isolate_successes(mut self) -> Self {
        self.isolate_successes = true;
        self
    }
    /// Rows that only read share one world: each of their cells must leave it unchanged.
    fn only_reads(&self) -> bool {
        const READS: [&str; 6] = ["ping", "history", "conversations", "receipts", "presence", "sync"];
        match &self.op {
            Op::Rest(method, _) => method == Method::GET,
            Op::Ws(kind) => READS.contains(kind),
            Op::Upgrade => false,
        }
    }

    fn name(&self) -> String {
        if self.variant.is_empty() { self.op.to_string() } else { format!("{} [{}]", self.op, self.variant) }
    }
}

fn rest(method: Method, path: &'static str) -> Row {
    Row::new(Op::Rest(method, path))
}

fn ws(kind: &'static str) -> Row {
    Row::new(Op::Ws(kind))
}

/// Non-API endpoints, outside the OpenAPI document on purpose; they must answer anyone.
const NON_API: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/api/openapi.json"];

/// The table: one row per operation (some operations have a row per target), each with
/// the outcome for every actor.
fn rows() -> Vec<Row> {
    use Method as M;
    let mut rows = Vec::new();

    // Outside the API: public, anonymous callers included.
    for path in NON_API {
        rows.push(rest(M::GET, path).expect(Cells::public()));
    }

    // Accounts. Registration, login and refresh need no token (and ignore a bad one).
    rows.extend([
        rest(M::POST, "/api/v1/auth/register")
            .fill(|w, a| Fill::default().body(json!({ "username": w.fresh_username(a), "password": TEST_PASSWORD })))
            .expect(Cells::public()),
        rest(M::POST, "/api/v1/auth/login")
            .fill(|w, a| Fill::default().body(json!({ "username": w.login_name(a), "password": TEST_PASSWORD })))
            .expect(Cells::public()),
        rest(M::POST, "/api/v1/auth/refresh")
            .fill(|w, a| Fill::default().body(json!({ "refresh_token": w.refresh_token(a) })))
            .expect(Cells::public()),
        rest(M::POST, "/api/v1/auth/logout"),
        rest(M::POST, "/api/v1/auth/password").fill(|_, _| {
            Fill::default().body(json!({ "current_password": TEST_PASSWORD, "new_password": "a brand new horse" }))
        }),
        rest(M::GET, "/api/v1/me"),
        // Everyone may delete their own account (with their password), and only their own.
        rest(M::DELETE, "/api/v1/me").fill(|_, _| Fill::default().body(json!({ "password": TEST_PASSWORD }))),
        rest(M::PATCH, "/api/v1/me").fill(|_, _| Fill::default().body(json!({ "bio": "matrix" }))),
        rest(M::GET, "/api/v1/me/sessions"),
        // The owner's session: only the owner may end it, and to anyone else it does not exist.
        rest(M::DELETE, "/api/v1/me/sessions/{session_id}")
            .fill(|w, _| Fill::default().param("session_id", &w.user(Owner).session_id))
            .expect(Cells::signed_in(not_found("session_not_found")).with(&[Owner], Expect::Ok)),
    ]);

    // Uploads: anyone signed in may upload; the group's picture (the admin's) is for
    // whoever can read the group's history, and nobody else learns it exists.
    let picture_readers = || Cells::signed_in(not_found("upload_not_found")).with(&IN_GROUP, Expect::Ok);
    rows.extend([
        rest(M::POST, "/api/v1/uploads").fill(|_, _| Fill::default().query("name=note.txt").body(json!({ "a": 1 }))),
        rest(M::GET, "/api/v1/uploads/{upload_id}")
            .fill(|w, _| Fill::default().param("upload_id", &w.picture))
            .expect(picture_readers()),
        rest(M::GET, "/api/v1/uploads/{upload_id}/thumbnail")
            .fill(|w, _| Fill::default().param("upload_id", &w.picture))
            .expect(picture_readers()),
    ]);

    // Server administration: nobody in the world holds the server-admin flag, so every
    // signed-in caller is refused, before any parameter is looked at.
    let not_admin = || Cells::signed_in(forbidden("not_admin"));
    rows.extend([
        rest(M::GET, "/api/v1/admin/users").expect(not_admin()),
        rest(M::GET, "/api/v1/admin/stats").expect(not_admin()),
        rest(M::GET, "/api/v1/admin/audit").expect(not_admin()),
        rest(M::POST, "/api/v1/admin/users/{user_id}/deactivate")
            .fill(|w, _| Fill::default().param("user_id", w.id(Member)))
            .expect(not_admin()),
        rest(M::POST, "/api/v1/admin/users/{user_id}/reactivate")
            .fill(|w, _| Fill::default().param("user_id", w.id(Member)))
            .expect(not_admin()),
        rest(M::POST, "/api/v1/admin/users/{user_id}/password")
            .fill(|w, _| {
                Fill::default().param("user_id", w.id(Member)).body(json!({ "password": "a brand new horse" }))
            })
            .expect(not_admin()),
        rest(M::DELETE, "/api/v1/admin/users/{user_id}/messages")
            .fill(|w, _| Fill::default().param("user_id", w.id(Member)))
            .expect(not_admin()),
        rest(M::DELETE, "/api/v1/admin/groups/{group_id}")
            .fill(|w, _| Fill::default().param("group_id", w.group))
            .expect(not_admin()),
    ]);

    // Users and friends.
    rows.extend([
        rest(M::GET, "/api/v1/users").fill(|w, _| Fill::default().query(format!("q={}", w.user(Owner).username))),
        rest(M::GET, "/api/v1/users/{user_id}").fill(|w, _| Fill::default().param("user_id", w.id(Owner))),
        rest(M::GET, "/api/v1/users/{user_id}/mutual-friends")
            .fill(|w, _| Fill::default().param("user_id", w.id(Owner))),
        rest(M::GET, "/api/v1/friend-requests"),
        rest(M::POST, "/api/v1/friend-requests")
            .fill(|w, _| Fill::default().body(json!({ "to_user_id": w.id(Owner) })))
            .expect(
                Cells::signed_in(Expect::Ok)
                    .with(&[Owner], bad_request("cannot_befriend_self"))
                    .with(&[Member], conflict("already_friends"))
                    .with(&[Blocked], forbidden("not_allowed"))
                    .with(&[NonMember], conflict("request_pending")),
            ),
        // The non-member's pending request to the owner: the owner answers it, the
        // non-member withdraws it, and to everyone else it does not exist.
        rest(M::POST, "/api/v1/friend-requests/{request_id}/accept")
            .fill(|w, _| Fill::default().param("request_id", w.friend_request))
            .expect(Cells::signed_in(not_found("friend_request_not_found")).with(&[Owner], Expect::Ok)),
        rest(M::POST, "/api/v1/friend-requests/{request_id}/decline")
            .fill(|w, _| Fill::default().param("request_id", w.friend_request))
            .expect(Cells::signed_in(not_found("friend_request_not_found")).with(&[Owner], Expect::Ok)),
        rest(M::POST, "/api/v1/friend-requests/{request_id}/cancel")
            .fill(|w, _| Fill::default().param("request_id", w.friend_request))
            .expect(Cells::signed_in(not_found("friend_request_not_found")).with(&[NonMember], Expect::Ok)),
        rest(M::GET, "/api/v1/friends"),
        rest(M::GET, "/api/v1/friends/suggestions"),
        // The owner (for the owner: the member), so both friends can act on the friendship.
        rest(M::DELETE, "/api/v1/friends/{user_id}")
            .fill(|w, a| Fill::default().param("user_id", w.id(w.counterpart(a))))
            .expect(Cells::signed_in(not_found("not_friends")).with(&[Owner, Member], Expect::Ok))
            .isolate_successes(),
        rest(M::PATCH, "/api/v1/friends/{user_id}")
            .fill(|w, a| Fill::default().param("user_id", w.id(w.counterpart(a))).body(json!({ "remark": "matrix" })))
            .expect(Cells::signed_in(not_found("not_friends")).with(&[Owner, Member], Expect::Ok)),
    ]);

    // Blocks: anyone may block anyone; only the blocker may lift a block.
    rows.extend([
        rest(M::GET, "/api/v1/blocks"),
        rest(M::PUT, "/api/v1/blocks/{user_id}").fill(|w, a| Fill::default().param("user_id", w.id(w.counterpart(a)))),
        rest(M::DELETE, "/api/v1/blocks/{user_id}")
            .variant("the owner's block of the blocked user")
            .fill(|w, a| {
                let target = if a == Owner { Blocked } else { Owner };
                Fill::default().param("user_id", w.id(target))
            })
            .expect(Cells::signed_in(not_found("not_blocked")).with(&[Owner], Expect::Ok)),
    ]);

    // Groups. The group asks for approval to join, so outsiders can see it (without
    // its announcement); the second, invite-only group has the owner alone.
    fn in_group(w: &World) -> Fill {
        Fill::default().param("group_id", w.group)
    }
    fn member_target(w: &World, target: Actor) -> Fill {
        in_group(w).param("user_id", w.id(target))
    }
    rows.extend([
        rest(M::POST, "/api/v1/groups")
            .fill(|_, _| Fill::default().body(json!({ "name": "New", "join_policy": "open" }))),
        rest(M::GET, "/api/v1/groups/{group_id}")
            .fill(|w, _| in_group(w).marker(&w.announcement))
            .expect(shown_to(&IN_GROUP)),
        rest(M::GET, "/api/v1/groups/{group_id}")
            .variant("invite-only")
            .fill(|w, _| Fill::default().param("group_id", w.hidden_group).marker(&w.hidden_announcement))
            .expect(Cells::signed_in(not_found("group_not_found")).with(&[Owner], Expect::Sees)),
        // An invite-only group answers outsiders as if missing (GET above); its other
        // operations must not give its existence away either.
        rest(M::GET, "/api/v1/groups/{group_id}/members")
            .variant("invite-only")
            .fill(|w, _| Fill::default().param("group_id", w.hidden_group))
            .expect(Cells::signed_in(not_found("group_not_found")).with(&[Owner], Expect::Ok)),
        rest(M::POST, "/api/v1/groups/{group_id}/join")
            .variant("invite-only")
            .fill(|w, _| Fill::default().param("group_id", w.hidden_group))
            .expect(Cells::signed_in(not_found("group_not_found")).with(&[Owner], conflict("already_member"))),
        rest(M::PATCH, "/api/v1/groups/{group_id}")
            .variant("description")
            .fill(|w, _| in_group(w).body(json!({ "description": "changed" })))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role"))),
        rest(M::PATCH, "/api/v1/groups/{group_id}")
            .variant("member limit: owner only")
            .fill(|w, _| in_group(w).body(json!({ "member_limit": 100 })))
            .expect(group_op(&[Owner], forbidden("insufficient_role")).with(&[Admin], forbidden("owner_only"))),
        rest(M::DELETE, "/api/v1/groups/{group_id}")
            .fill(|w, _| in_group(w))
            .expect(group_op(&[Owner], forbidden("owner_only"))),
        // A join request: members are already in; a kicked member may ask again.
        rest(M::POST, "/api/v1/groups/{group_id}/join")
            .fill(|w, _| in_group(w))
            .expect(Cells::signed_in(Expect::Ok).with(&IN_GROUP, conflict("already_member"))),
        rest(M::POST, "/api/v1/groups/{group_id}/leave")
            .fill(|w, _| in_group(w))
            .expect(group_op(&IN_GROUP, Expect::Ok))
            .isolate_successes(),
        rest(M::GET, "/api/v1/groups/{group_id}/members")
            .fill(|w, _| in_group(w))
            .expect(group_op(&IN_GROUP, Expect::Ok)),
        rest(M::DELETE, "/api/v1/groups/{group_id}/members/{user_id}")
            .variant("a member")
            .fill(|w, _| member_target(w, Member))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role")))
            .isolate_successes(),
        rest(M::DELETE, "/api/v1/groups/{group_id}/members/{user_id}")
            .variant("the owner")
            .fill(|w, _| member_target(w, Owner))
            .expect(group_op(&[], forbidden("insufficient_role"))),
        rest(M::PUT, "/api/v1/groups/{group_id}/members/{user_id}/role")
            .variant("make the member an admin")
            .fill(|w, _| member_target(w, Member).body(json!({ "role": "admin" })))
            .expect(group_op(&[Owner], forbidden("owner_only"))),
        rest(M::PUT, "/api/v1/groups/{group_id}/members/{user_id}/mute")
            .variant("the member")
            .fill(|w, _| member_target(w, Member).body(json!({ "duration_secs": 600 })))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role"))),
        // The muted member cannot lift their own mute.
        rest(M::DELETE, "/api/v1/groups/{group_id}/members/{user_id}/mute")
            .variant("the muted member")
            .fill(|w, _| member_target(w, Muted))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role"))),
        // To the member: the member's own attempt is refused for want of ownership
        // before anything is said about the target.
        rest(M::POST, "/api/v1/groups/{group_id}/transfer")
            .variant("to the member")
            .fill(|w, _| in_group(w).body(json!({ "user_id": w.id(Member) })))
            .expect(group_op(&[Owner], forbidden("owner_only"))),
        rest(M::POST, "/api/v1/groups/{group_id}/invitations")
            .variant("invite another user")
            .fill(|w, _| in_group(w).body(json!({ "user_id": w.id(Another) })))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role")))
            .isolate_successes(),
        // The owner's invitation of the non-member: theirs alone to answer.
        rest(M::POST, "/api/v1/group-invitations/{invitation_id}/accept")
            .fill(|w, _| Fill::default().param("invitation_id", w.invitation))
            .expect(Cells::signed_in(not_found("invitation_not_found")).with(&[NonMember], Expect::Ok)),
        rest(M::POST, "/api/v1/group-invitations/{invitation_id}/decline")
            .fill(|w, _| Fill::default().param("invitation_id", w.invitation))
            .expect(Cells::signed_in(not_found("invitation_not_found")).with(&[NonMember], Expect::Ok)),
        rest(M::GET, "/api/v1/me/group-invitations")
            .fill(|w, _| Fill::default().marker(&w.group_name))
            .expect(shown_to(&[NonMember])),
        rest(M::GET, "/api/v1/me/groups")
            .fill(|w, _| Fill::default().marker(&w.group_name))
            .expect(shown_to(&IN_GROUP)),
        rest(M::GET, "/api/v1/groups/{group_id}/join-requests")
            .fill(|w, _| in_group(w))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role"))),
        rest(M::POST, "/api/v1/groups/{group_id}/join-requests/{request_id}/approve")
            .fill(|w, _| in_group(w).param("request_id", w.join_request))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role")))
            .isolate_successes(),
        // A request to another group, through this group's path: it does not exist here.
        rest(M::POST, "/api/v1/groups/{group_id}/join-requests/{request_id}/approve")
            .variant("another group's request")
            .fill(|w, _| in_group(w).param("request_id", w.foreign_join_request))
            .expect(
                group_op(&[], forbidden("insufficient_role"))
                    .with(&[Owner, Admin], not_found("join_request_not_found")),
            ),
        rest(M::POST, "/api/v1/groups/{group_id}/join-requests/{request_id}/reject")
            .fill(|w, _| in_group(w).param("request_id", w.join_request))
            .expect(group_op(&[Owner, Admin], forbidden("insufficient_role")))
            .isolate_successes(),
        rest(M::GET, "/api/v1/groups/{group_id}/announcements")
            .fill(|w, _| in_group(w).marker(&w.announcement))
            .expect(group_op(&IN_GROUP, Expect::Sees)),
        rest(M::GET, "/api/v1/groups/{group_id}/conversation")
            .fill(|w, _| in_group(w))
            .expect(Cells::signed_in(not_found("conversation_not_found")).with(&IN_GROUP, Expect::Ok)),
    ]);

    // Conversations and messages. Direct conversations are for friends only (the
    // default `GOIM_DIRECT_MESSAGES=friends`, pinned by `matrix_app`).
    rows.push(
        rest(M::POST, "/api/v1/conversations/direct")
            .fill(|w, a| Fill::default().body(json!({ "user_id": w.id(w.counterpart(a)) })))
            .expect(
                Cells::signed_in(forbidden("not_friends"))
                    .with(&[Owner, Member], Expect::Ok)
                    .with(&[Blocked], forbidden("not_allowed")),
            ),
    );
    for kind in [Kind::Group, Kind::Direct, Kind::BlockedPair] {
        let at = move |w: &World, a: Actor| {
            let chat = w.chat(kind, a);
            Fill::default().param("conversation_id", chat.id).marker(&chat.marker)
        };
        // Someone else's message: nobody may edit it; in a group the owner and admins may
        // remove it, in a direct conversation nobody may.
        let not_yours = forbidden("not_your_message");
        let edit_others = match kind {
            Kind::Group => conversation(kind, Act::Speak).with(&[Owner, Admin, Member], not_yours),
            Kind::Direct => conversation(kind, Act::Speak).with(&[Owner, Member], not_yours),
            Kind::BlockedPair => conversation(kind, Act::Speak),
        };
        let recall_others = match kind {
            Kind::Group => conversation(kind, Act::Quiet).with(&[Member, Muted], not_yours),
            Kind::Direct => conversation(kind, Act::Quiet).with(&[Owner, Member], not_yours),
            Kind::BlockedPair => conversation(kind, Act::Quiet),
        };
        let (own, others) = match kind {
            Kind::Group => ("group, own message", "group, someone else's"),
            Kind::Direct => ("direct, own message", "direct, someone else's"),
            Kind::BlockedPair => ("blocked pair, own message", "blocked pair, someone else's"),
        };
        rows.extend([
            rest(M::GET, "/api/v1/conversations")
                .variant(kind.label())
                .fill(move |w, a| Fill::default().marker(&w.chat(kind, a).marker))
                .expect(shown_to(kind.readers())),
            rest(M::GET, "/api/v1/conversations/{conversation_id}/messages")
                .variant(kind.label())
                .fill(at)
                .expect(conversation(kind, Act::View).seeing()),
            rest(M::POST, "/api/v1/conversations/{conversation_id}/messages")
                .variant(kind.label())
                .fill(move |w, a| at(w, a).body(json!({ "client_msg_id": Uuid::new_v4(), "body": "new" })))
                .expect(conversation(kind, Act::Speak)),
            rest(M::PATCH, "/api/v1/conversations/{conversation_id}/messages/{seq}")
                .variant(own)
                .fill(move |w, a| at(w, a).param("seq", w.chat(kind, a).own(a)).body(json!({ "body": "edited" })))
                .expect(conversation(kind, Act::Speak)),
            rest(M::PATCH, "/api/v1/conversations/{conversation_id}/messages/{seq}")
                .variant(others)
                .fill(move |w, a| at(w, a).param("seq", w.chat(kind, a).others(a)).body(json!({ "body": "edited" })))
                .expect(edit_others),
            rest(M::DELETE, "/api/v1/conversations/{conversation_id}/messages/{seq}")
                .variant(own)
                .fill(move |w, a| at(w, a).param("seq", w.chat(kind, a).own(a)))
                .expect(conversation(kind, Act::Quiet)),
            rest(M::DELETE, "/api/v1/conversations/{conversation_id}/messages/{seq}")
                .variant(others)
                .fill(move |w, a| at(w, a).param("seq", w.chat(kind, a).others(a)))
                .expect(recall_others)
                .isolate_successes(),
            rest(M::PUT, "/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}")
                .variant(kind.label())
                .fill(move |w, a| at(w, a).param("seq", 1).param("emoji", "🎉"))
                .expect(conversation(kind, Act::Speak)),
            // Everyone who was ever in the conversation reacted 👍 to message 1.
            rest(M::DELETE, "/api/v1/conversations/{conversation_id}/messages/{seq}/reactions/{emoji}")
                .variant(kind.label())
                .fill(move |w, a| at(w, a).param("seq", 1).param("emoji", "👍"))
                .expect(conversation(kind, Act::Speak)),
            rest(M::POST, "/api/v1/conversations/{conversation_id}/read")
                .variant(kind.label())
                .fill(move |w, a| at(w, a).body(json!({ "seq": 2 })))
                .expect(conversation(kind, Act::Quiet)),
            rest(M::PATCH, "/api/v1/conversations/{conversation_id}/settings")
                .variant(kind.label())
                .fill(move |w, a| at(w, a).body(json!({ "pinned": true })))
                .expect(conversation(kind, Act::View)),
            rest(M::GET, "/api/v1/conversations/{conversation_id}/receipts")
                .variant(kind.label())
                .fill(at)
                .expect(conversation(kind, Act::View)),
            // Asked for by id: a conversation the caller cannot read yields nothing.
            rest(M::GET, "/api/v1/messages/search")
                .variant(kind.label())
                .fill(move |w, a| {
                    let chat = w.chat(kind, a);
                    Fill::default().query(format!("q={}&conversation_id={}", chat.marker, chat.id)).marker(&chat.marker)
                })
                .expect(shown_to(kind.readers())),
        ]);
    }
    fn in_group_chat(w: &World) -> Fill {
        Fill::default().param("conversation_id", w.group_chat.id)
    }
    rows.extend([
        // Mentioning everyone is for the owner and admins.
        rest(M::POST, "/api/v1/conversations/{conversation_id}/messages")
            .variant("group, @all")
            .fill(|w, _| {
                in_group_chat(w).body(json!({ "client_msg_id": Uuid::new_v4(), "body": "all", "mention_all": true }))
            })
            .expect(conversation(Kind::Group, Act::Speak).with(&[Member], forbidden("insufficient_role"))),
        // Documented: owners and admins remove any message, the owner's included.
        rest(M::DELETE, "/api/v1/conversations/{conversation_id}/messages/{seq}")
            .variant("group, the owner's message")
            .fill(|w, _| in_group_chat(w).param("seq", w.group_chat.own(Owner)))
            .expect(conversation(Kind::Group, Act::Quiet).with(&[Member, Muted], forbidden("not_your_message")))
            .isolate_successes(),
    ]);

    // The WebSocket: a ticket, the upgrade, and every request type.
    rows.extend([rest(M::POST, "/api/v1/ws/ticket"), Row::new(Op::Upgrade), ws("ping")]);
    for kind in [Kind::Group, Kind::Direct] {
        let fields = move |w: &World, a: Actor, extra: Value| {
            let chat = w.chat(kind, a);
            let mut fields = json!({ "conversation_id": chat.id });
            if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
                fields.extend(extra);
            }
            Fill::default().body(fields).marker(&chat.marker)
        };
        rows.extend([
            ws("send")
                .variant(kind.label())
                .fill(move |w, a| {
                    fields(w, a, json!({ "message": { "client_msg_id": Uuid::new_v4(), "body": "new" } }))
                })
                .expect(conversation(kind, Act::Speak)),
            ws("edit")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({ "seq": w.chat(kind, a).own(a), "body": "edited" })))
                .expect(conversation(kind, Act::Speak)),
            ws("recall")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({ "seq": w.chat(kind, a).own(a) })))
                .expect(conversation(kind, Act::Quiet)),
            ws("react")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({ "seq": 1, "emoji": "🎉", "add": true })))
                .expect(conversation(kind, Act::Speak)),
            ws("read")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({ "seq": 2 })))
                .expect(conversation(kind, Act::Quiet)),
            ws("delivered")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({ "seq": 2 })))
                .expect(conversation(kind, Act::Quiet)),
            ws("typing")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({ "typing": true })))
                .expect(conversation(kind, Act::Speak)),
            ws("history")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({})))
                .expect(conversation(kind, Act::View).seeing()),
            ws("receipts")
                .variant(kind.label())
                .fill(move |w, a| fields(w, a, json!({})))
                .expect(conversation(kind, Act::View)),
            ws("conversations")
                .variant(kind.label())
                .fill(move |w, a| Fill::default().body(json!({})).marker(&w.chat(kind, a).marker))
                .expect(shown_to(kind.readers())),
            ws("sync")
                .variant(kind.label())
                .fill(move |w, a| {
                    let chat = w.chat(kind, a);
                    Fill::default().body(json!({ "cursors": { chat.id.to_string(): 0 } })).marker(&chat.marker)
                })
                .expect(shown_to(kind.readers())),
        ]);
    }
    // Presence is for friends only.
    rows.push(
        ws("presence")
            .fill(|w, a| {
                let peer = w.id(w.counterpart(a));
                Fill::default().body(json!({ "user_ids": [peer] })).marker(format!("\"user_id\":{peer}"))
            })
            .expect(shown_to(&[Owner, Member])),
    );
    rows
}

// ---------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------

/// One conversation of the world, and who said what in it (each message carries the
/// conversation's marker).
struct Chat {
    id: i64,
    marker: String,
    said: Vec<(Actor, i64)>,
}

impl Chat {
    /// The actor's own message; message 1 (the owner's) for actors who never spoke here.
    fn own(&self, actor: Actor) -> i64 {
        self.said.iter().find(|(who, _)| *who == actor).map_or(1, |(_, seq)| *seq)
    }

    /// A message by someone else: the member's, else the owner's, else the peer's.
    fn others(&self, actor: Actor) -> i64 {
        [Member, Owner, Blocked, Unfriended]
            .into_iter()
            .filter(|who| *who != actor)
            .find_map(|who| self.said.iter().find(|(w, _)| *w == who).map(|(_, seq)| *seq))
            .expect("someone else spoke")
    }
}

struct World {
    /// Names are unique per world: `m0007…`.
    tag: String,
    users: Vec<(Actor, TestUser)>,
    /// A correctly signed access token for the owner's session that expired an hour ago.
    expired_token: String,
    /// Refresh tokens, one per actor (anonymous and expired callers use spare sessions of the owner's).
    refresh_tokens: Vec<(Actor, String)>,
    group: i64,
    group_name: String,
    announcement: String,
    hidden_group: i64,
    hidden_announcement: String,
    group_chat: Chat,
    /// The owner's direct conversations with `Member`, `Blocked` and `Unfriended`.
    directs: Vec<(Actor, Chat)>,
    /// From `NonMember` to the owner, pending.
    friend_request: i64,
    /// From the owner to `NonMember`, pending.
    invitation: i64,
    /// An image the admin sent in the group's conversation (an upload id).
    picture: String,
    /// From a user who is no actor, pending.
    join_request: i64,
    /// From the same user to a group of `Another`'s, pending.
    foreign_join_request: i64,
    /// Every user of the world, for the state fingerprint.
    user_ids: Vec<i64>,
}

impl World {
    fn user(&self, actor: Actor) -> &TestUser {
        self.users.iter().find(|(a, _)| *a == actor).map(|(_, u)| u).unwrap_or_else(|| panic!("{actor:?} has no user"))
    }

    fn id(&self, actor: Actor) -> i64 {
        self.user(actor).id
    }

    fn token(&self, actor: Actor) -> Option<&str> {
        match actor {
            Anonymous => None,
            Expired => Some(&self.expired_token),
            _ => Some(&self.user(actor).access_token),
        }
    }

    /// Whom a one-to-one operation points at: the owner, and for the owner the member.
    fn counterpart(&self, actor: Actor) -> Actor {
        if actor == Owner { Member } else { Owner }
    }

    fn fresh_username(&self, actor: Actor) -> String {
        format!("{}r{}", self.tag, actor as usize)
    }

    /// Who logs in: the actor, or the owner for callers without an account.
    fn login_name(&self, actor: Actor) -> &str {
        let actor = if SIGNED_IN.contains(&actor) { actor } else { Owner };
        &self.user(actor).username
    }

    fn refresh_token(&self, actor: Actor) -> &str {
        self.refresh_tokens.iter().find(|(a, _)| *a == actor).map(|(_, t)| t.as_str()).expect("refresh token")
    }

    fn chat(&self, kind: Kind, actor: Actor) -> &Chat {
        match kind {
            Kind::Group => &self.group_chat,
            Kind::Direct | Kind::BlockedPair => {
                let peer = match (kind, actor) {
                    (Kind::BlockedPair, _) => Blocked,
                    (_, Owner) => Member,
                    _ => actor,
                };
                self.directs
                    .iter()
                    .find(|(a, _)| *a == peer)
                    .or_else(|| self.directs.iter().find(|(a, _)| *a == Member))
                    .map(|(_, chat)| chat)
                    .expect("the owner's conversation with the member")
            }
        }
    }
}

/// Builds worlds on one app; every world has users and groups of its own.
struct Worlds<'a> {
    app: &'a TestApp,
    /// A real Argon2 hash of [`TEST_PASSWORD`], so seeded users can log in and change
    /// their password without each paying for a hash.
    password_hash: String,
    built: AtomicUsize,
}

impl Worlds<'_> {
    async fn build(&self) -> World {
        let app = self.app;
        let n = self.built.fetch_add(1, Ordering::Relaxed);
        let tag = format!("m{n:04}");
        let mut seeded = app.seed_users(&format!("{tag}u"), 10).await.into_iter();
        let mut users = Vec::new();
        for actor in SIGNED_IN {
            users.push((actor, seeded.next().expect("seeded user")));
        }
        let applicant = seeded.next().expect("seeded user");
        let user_ids: Vec<i64> = users.iter().map(|(_, u)| u.id).chain([applicant.id]).collect();
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = ANY($2)")
            .bind(&self.password_hash)
            .bind(&user_ids)
            .execute(&app.pool)
            .await
            .unwrap();
        let get = |actor: Actor| &users.iter().find(|(a, _)| *a == actor).unwrap().1;
        let owner = get(Owner);

        let keys = TokenKeys::new(test_config().auth.jwt_secret.as_ref().unwrap(), Duration::from_secs(900));
        let hour_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
        let owner_session = SessionId(owner.session_id.parse().unwrap());
        let expired_token = keys.issue(UserId(owner.id), owner_session, hour_ago).unwrap();
        let mut refresh_tokens = Vec::new();
        for (actor, user) in &users {
            refresh_tokens.push((*actor, refresh_token(app, user.id, &user.session_id).await));
        }
        for actor in [Anonymous, Expired] {
            let spare = Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1::uuid, $2, now() + interval '1 day')",
            )
            .bind(&spare)
            .bind(owner.id)
            .execute(&app.pool)
            .await
            .unwrap();
            refresh_tokens.push((actor, refresh_token(app, owner.id, &spare).await));
        }

        // Direct conversations: each of the owner's friends and the owner say something
        // and react to the first message; then one friend is blocked, one unfriended.
        let mut directs = Vec::new();
        for peer in [Member, Blocked, Unfriended] {
            let user = get(peer);
            befriend(app, owner, user).await;
            let id = open_direct(app, owner, user).await;
            let marker = format!("{tag}chat{}", peer as usize);
            let mut said = Vec::new();
            for (who, speaker) in [(Owner, owner), (peer, user)] {
                let ack = send_text(app, speaker, id, &format!("{marker} from {who:?}")).await;
                said.push((who, ack["seq"].as_i64().unwrap()));
            }
            for speaker in [owner, user] {
                react(app, speaker, id, 1).await;
            }
            directs.push((peer, Chat { id, marker, said }));
        }
        expect(app, owner, Method::PUT, &format!("/api/v1/blocks/{}", get(Blocked).id), None, 204).await;
        expect(app, owner, Method::DELETE, &format!("/api/v1/friends/{}", get(Unfriended).id), None, 204).await;

        // The group: open while the members join, then approval only.
        let group_name = format!("{tag}club");
        let announcement = format!("{tag}notice");
        let body = json!({ "name": group_name, "join_policy": "open", "announcement": announcement });
        let group = expect(app, owner, Method::POST, "/api/v1/groups", Some(body), 201).await["id"].as_i64().unwrap();
        for joiner in [Admin, Member, Muted, Kicked] {
            expect(app, get(joiner), Method::POST, &format!("/api/v1/groups/{group}/join"), None, 200).await;
        }
        let role = format!("/api/v1/groups/{group}/members/{}/role", get(Admin).id);
        expect(app, owner, Method::PUT, &role, Some(json!({ "role": "admin" })), 204).await;
        let chat_id = expect(app, owner, Method::GET, &format!("/api/v1/groups/{group}/conversation"), None, 200).await
            ["conversation_id"]
            .as_i64()
            .unwrap();
        let marker = format!("{tag}chatg");
        let mut said = Vec::new();
        for who in [Owner, Admin, Member, Muted, Kicked] {
            let ack = send_text(app, get(who), chat_id, &format!("{marker} from {who:?}")).await;
            said.push((who, ack["seq"].as_i64().unwrap()));
            react(app, get(who), chat_id, 1).await;
        }
        let picture = crate::uploads::uploaded(app, get(Admin), "club.png", crate::uploads::png(64, 48)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let image = json!({ "client_msg_id": Uuid::new_v4(), "kind": "image", "body": format!("{marker} picture"),
            "content": { "upload_id": picture } });
        expect(app, get(Admin), Method::POST, &format!("/api/v1/conversations/{chat_id}/messages"), Some(image), 201)
            .await;
        let mute = format!("/api/v1/groups/{group}/members/{}/mute", get(Muted).id);
        expect(app, owner, Method::PUT, &mute, Some(json!({ "duration_secs": 3600 })), 200).await;
        let kick = format!("/api/v1/groups/{group}/members/{}", get(Kicked).id);
        expect(app, owner, Method::DELETE, &kick, None, 204).await;
        let policy = json!({ "join_policy": "approval" });
        expect(app, owner, Method::PATCH, &format!("/api/v1/groups/{group}"), Some(policy), 200).await;

        // Pending things: a friend request, an invitation, a join request.
        let body = json!({ "to_user_id": owner.id });
        let friend_request = expect(app, get(NonMember), Method::POST, "/api/v1/friend-requests", Some(body), 201)
            .await["request"]["id"]
            .as_i64()
            .unwrap();
        let body = json!({ "user_id": get(NonMember).id });
        let invitations = format!("/api/v1/groups/{group}/invitations");
        let invitation = expect(app, owner, Method::POST, &invitations, Some(body), 201).await["id"].as_i64().unwrap();
        let join = format!("/api/v1/groups/{group}/join");
        let join_request =
            expect(app, &applicant, Method::POST, &join, None, 202).await["request_id"].as_i64().unwrap();

        let body = json!({ "name": "Elsewhere", "join_policy": "approval" });
        let elsewhere =
            expect(app, get(Another), Method::POST, "/api/v1/groups", Some(body), 201).await["id"].as_i64().unwrap();
        let join = format!("/api/v1/groups/{elsewhere}/join");
        let foreign_join_request =
            expect(app, &applicant, Method::POST, &join, None, 202).await["request_id"].as_i64().unwrap();

        let hidden_announcement = format!("{tag}secret");
        let body = json!({ "name": "Hidden", "join_policy": "invite_only", "announcement": hidden_announcement });
        let hidden_group =
            expect(app, owner, Method::POST, "/api/v1/groups", Some(body), 201).await["id"].as_i64().unwrap();

        World {
            tag,
            users,
            expired_token,
            refresh_tokens,
            group,
            group_name,
            announcement,
            hidden_group,
            hidden_announcement,
            group_chat: Chat { id: chat_id, marker, said },
            directs,
            friend_request,
            invitation,
            picture,
            join_request,
            foreign_join_request,
            user_ids,
        }
    }
}

/// A refresh token for an existing session, stored as login would store it.
async fn refresh_token(app: &TestApp, user: i64, session: &str) -> String {
    let token = RefreshToken::generate();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id)
         SELECT $1, id FROM sessions WHERE id = $2::uuid AND user_id = $3",
    )
    .bind(token.hash())
    .bind(session)
    .bind(user)
    .execute(&app.pool)
    .await
    .unwrap();
    token.as_str().to_owned()
}

async fn react(app: &TestApp, user: &TestUser, conversation: i64, seq: i64) {
    let path = format!("/api/v1/conversations/{conversation}/messages/{seq}/reactions/👍");
    expect(app, user, Method::PUT, &path, None, 204).await;
}

/// A setup step that must succeed with `status`; its JSON body (or null).
async fn expect(app: &TestApp, user: &TestUser, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
    let response = call(app, user, method.clone(), path, body).await;
    let got = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(got, status, "world setup: {method} {path} as {}: {text}", user.username);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Everything an operation could change for the world's users and groups, as text.
/// Volatile bookkeeping (last-used times, presence) is left out.
async fn fingerprint(app: &TestApp, world: &World) -> String {
    let groups = [world.group, world.hidden_group];
    sqlx::query_scalar(
        "SELECT concat_ws(E'\n',
           'users: ' || coalesce((SELECT string_agg(concat_ws('|', id, nickname, bio, avatar_url, birthday, md5(password_hash)), ';' ORDER BY id) FROM users WHERE id = ANY($1)), ''),
           'sessions: ' || coalesce((SELECT string_agg(concat_ws('|', id, revoked_at IS NULL), ';' ORDER BY id) FROM sessions WHERE user_id = ANY($1)), ''),
           'friendships: ' || coalesce((SELECT string_agg(concat_ws('|', user_id, friend_id, remark), ';' ORDER BY user_id, friend_id) FROM friendships WHERE user_id = ANY($1)), ''),
           'friend requests: ' || coalesce((SELECT string_agg(concat_ws('|', id, from_user, to_user, status), ';' ORDER BY id) FROM friend_requests WHERE from_user = ANY($1) OR to_user = ANY($1)), ''),
           'blocks: ' || coalesce((SELECT string_agg(concat_ws('|', blocker_id, blocked_id), ';' ORDER BY blocker_id, blocked_id) FROM blocks WHERE blocker_id = ANY($1)), ''),
           'groups: ' || coalesce((SELECT string_agg(concat_ws('|', id, name, avatar_url, description, announcement, join_policy, history_visibility, member_limit, member_count, disbanded_at), ';' ORDER BY id) FROM groups WHERE id = ANY($2)), ''),
           'group members: ' || coalesce((SELECT string_agg(concat_ws('|', group_id, user_id, role, muted_until), ';' ORDER BY group_id, user_id) FROM group_members WHERE group_id = ANY($2)), ''),
           'join requests: ' || coalesce((SELECT string_agg(concat_ws('|', id, user_id, status), ';' ORDER BY id) FROM group_join_requests WHERE group_id = ANY($2)), ''),
           'invitations: ' || coalesce((SELECT string_agg(concat_ws('|', id, invitee_id, status), ';' ORDER BY id) FROM group_invitations WHERE group_id = ANY($2)), ''),
           'announcements: ' || (SELECT count(*) FROM group_announcements WHERE group_id = ANY($2)),
           'conversation members: ' || coalesce((SELECT string_agg(concat_ws('|', conversation_id, user_id, last_read_seq, last_delivered_seq, pinned, muted, archived), ';' ORDER BY conversation_id, user_id) FROM conversation_members WHERE user_id = ANY($1)), ''),
           'messages: ' || coalesce((SELECT string_agg(concat_ws('|', conversation_id, seq, sender_id, body, edited_at, deleted_at), ';' ORDER BY conversation_id, seq) FROM messages WHERE sender_id = ANY($1)), ''),
           'reactions: ' || coalesce((SELECT string_agg(concat_ws('|', conversation_id, seq, user_id, emoji), ';' ORDER BY conversation_id, seq, user_id, emoji) FROM message_reactions WHERE user_id = ANY($1)), ''))",
    )
    .bind(&world.user_ids)
    .bind(&groups[..])
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// The sections of two fingerprints that differ, by name.
fn changed_sections(before: &str, after: &str) -> String {
    let names: Vec<&str> = before
        .lines()
        .zip(after.lines())
        .filter(|(b, a)| b != a)
        .map(|(b, _)| b.split(':').next().unwrap_or_default())
        .collect();
    names.join(", ")
}

// ---------------------------------------------------------------------------------------
// Running a cell
// ---------------------------------------------------------------------------------------

/// What one attempt got.
struct Got {
    ok: bool,
    /// The HTTP status; none for WebSocket replies.
    status: Option<u16>,
    code: String,
    text: String,
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, self.ok) {
            (Some(status), true) => write!(f, "{status}"),
            (Some(status), false) => write!(f, "{status} {}", self.code),
            (None, true) => write!(f, "ok"),
            (None, false) => write!(f, "error {}", self.code),
        }
    }
}

impl Got {
    async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Self::from_parts(status, text)
    }

    fn from_parts(status: u16, text: String) -> Self {
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
        Self { ok: (200..300).contains(&status) || status == 101, status: Some(status), code, text }
    }

    fn from_reply(reply: Value) -> Self {
        Self {
            ok: reply["ok"] == true,
            status: None,
            code: reply["error"]["code"].as_str().unwrap_or_default().to_owned(),
            text: reply.to_string(),
        }
    }

    fn meets(&self, expect: Expect, marker: &str) -> bool {
        match expect {
            Expect::Ok => self.ok,
            Expect::Sees => self.ok && shows(&self.text, marker),
            Expect::Blind => self.ok && !shows(&self.text, marker),
            Expect::Refused(status, code) => !self.ok && self.status.is_none_or(|s| s == status) && self.code == code,
        }
    }
}

/// Whether `text` contains `marker` as a whole token (so `"user_id":5` is not found in
/// `"user_id":51`).
fn shows(text: &str, marker: &str) -> bool {
    assert!(!marker.is_empty(), "a Sees or Blind cell needs a marker");
    text.match_indices(marker)
        .any(|(at, _)| text[at + marker.len()..].chars().next().is_none_or(|next| !next.is_ascii_alphanumeric()))
}

fn fill_path(template: &str, fill: &Fill) -> String {
    let mut path = template.to_owned();
    for (name, value) in &fill.params {
        let placeholder = format!("{{{name}}}");
        assert!(path.contains(&placeholder), "{template} has no {{{name}}}");
        path = path.replace(&placeholder, value);
    }
    assert!(!path.contains('{'), "{template}: unfilled parameters in {path}");
    if fill.query.is_empty() { path } else { format!("{path}?{}", fill.query) }
}

async fn attempt(app: &TestApp, op: &Op, fill: &Fill, world: &World, actor: Actor) -> Got {
    let token = world.token(actor);
    match op {
        Op::Rest(method, template) => {
            let mut request = app.client.request(method.clone(), app.url(&fill_path(template, fill)));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &fill.body {
                request = request.json(body);
            }
            Got::from_response(request.send().await.expect("request completes")).await
        }
        // Callers without a valid session never get a socket: the door is all they see.
        Op::Upgrade | Op::Ws(_) if !SIGNED_IN.contains(&actor) => knock(app, token).await,
        Op::Upgrade => upgrade_with_ticket(app, token.expect("a signed-in actor has a token")).await,
        Op::Ws(kind) => {
            let mut socket = app.connect(world.user(actor)).await;
            Got::from_reply(socket.request(kind, fill.body.clone().unwrap_or_else(|| json!({}))).await)
        }
    }
}

/// The handshake without a ticket, with `token` (if any) as a bearer header.
async fn knock(app: &TestApp, token: Option<&str>) -> Got {
    let mut request = app.ws_url("").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", HeaderValue::from_static("goim.v1"));
    if let Some(token) = token {
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    }
    handshake(request).await
}

/// A ticket for `token`'s session, then the handshake with it.
async fn upgrade_with_ticket(app: &TestApp, token: &str) -> Got {
    let response = app.send_as(Method::POST, token, "/api/v1/ws/ticket", None).await;
    if response.status() != 200 {
        return Got::from_response(response).await;
    }
    let ticket: Value = response.json().await.expect("ticket body");
    let url = app.ws_url(&format!("?ticket={}", ticket["ticket"].as_str().expect("ticket")));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("goim.v1"));
    handshake(request).await
}

async fn handshake(request: tungstenite::handshake::client::Request) -> Got {
    let connected = tokio::time::timeout(crate::support::TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the handshake is answered in time");
    match connected {
        Ok((_socket, response)) => Got::from_parts(response.status().as_u16(), String::new()),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().map(|b| String::from_utf8_lossy(b).into_owned());
            Got::from_parts(response.status().as_u16(), body.unwrap_or_default())
        }
        Err(error) => {
            Got { ok: false, status: Some(0), code: format!("handshake failed: {error}"), text: String::new() }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

async fn matrix_app() -> TestApp {
    spawn_app_with(|config| {
        // Registration and login cells come from one address, many per row.
        config.auth.auth_rate_burst = 100_000;
        // Pinned to the default: the table expects friends-only direct messages.
        config.chat.direct_messages = DirectMessagePolicy::Friends;
    })
    .await
}

#[tokio::test]
async fn every_operation_has_a_row_and_every_row_an_operation() {
    let app = matrix_app().await;
    let document: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table = rows();
    let in_table: BTreeSet<(String, String)> = table.iter().filter_map(|row| row.op.documented_as()).collect();
    let non_api = |(_, path): &&(String, String)| NON_API.contains(&path.as_str());
    let without_row: Vec<_> = documented.iter().filter(|key| !non_api(key) && !in_table.contains(key)).collect();
    let undocumented: Vec<_> = in_table.iter().filter(|key| !non_api(key) && !documented.contains(key)).collect();

    let ws_rows: BTreeSet<&str> = table
        .iter()
        .filter_map(|row| match row.op {
            Op::Ws(kind) => Some(kind),
            _ => None,
        })
        .collect();
    let request_types: BTreeSet<&str> = goim::gateway::protocol::REQUEST_TYPES.into_iter().collect();
    let ws_without_row: Vec<_> = request_types.difference(&ws_rows).collect();
    let ws_unknown: Vec<_> = ws_rows.difference(&request_types).collect();

    let mut problems = Vec::new();
    for (method, path) in &without_row {
        problems.push(format!("documented operation without a row: {method} {path}"));
    }
    for (method, path) in &undocumented {
        problems.push(format!("row for an operation missing from the OpenAPI document: {method} {path}"));
    }
    for kind in &ws_without_row {
        problems.push(format!("WebSocket request type without a row: ws:{kind}"));
    }
    for kind in &ws_unknown {
        problems.push(format!("row for an unknown WebSocket request type: ws:{kind}"));
    }
    assert!(problems.is_empty(), "the matrix and the API disagree:\n  {}", problems.join("\n  "));
}

#[tokio::test]
async fn every_actor_gets_exactly_what_the_table_says() {
    let started = Instant::now();
    let app = matrix_app().await;
    let template = app.register("matrix_template").await;
    let password_hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(template.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let worlds = Worlds { app: &app, password_hash, built: AtomicUsize::new(0) };

    let table = rows();
    let mut mismatches = Vec::new();
    let mut cells = 0;
    let shared = worlds.build().await;
    for row in &table {
        let fresh;
        let world = if row.only_reads() {
            &shared
        } else {
            fresh = worlds.build().await;
            &fresh
        };
        // Refusals first, each on the world as built and each leaving it as it was.
        let mut order: Vec<Actor> = ACTORS.to_vec();
        order.sort_by_key(|actor| !row.cells.get(*actor).refused());
        let mut state = fingerprint(&app, world).await;
        let mut successes = 0;
        let mut own_world = None;
        for actor in order {
            let expect = row.cells.get(actor);
            let world = if !expect.refused() && row.isolate_successes && successes > 0 {
                &*own_world.insert(worlds.build().await)
            } else {
                world
            };
            let fill = (row.fill)(world, actor);
            let got = attempt(&app, &row.op, &fill, world, actor).await;
            cells += 1;
            if !got.meets(expect, &fill.marker) {
                mismatches.push(format!("{} as {actor:?}: expected {expect}, got {got}", row.name()));
            }
            if expect.refused() || row.only_reads() {
                let after = fingerprint(&app, world).await;
                if after != state {
                    let changed = changed_sections(&state, &after);
                    let what = if expect.refused() { "refused" } else { "only a read" };
                    mismatches.push(format!("{} as {actor:?}: {what}, yet changed {changed}", row.name()));
                    state = after;
                }
            }
            if !expect.refused() {
                successes += 1;
            }
        }
    }
    println!(
        "authorisation matrix: {} rows, {cells} cells, {} worlds, {:.1} s",
        table.len(),
        worlds.built.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ from the table:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}
