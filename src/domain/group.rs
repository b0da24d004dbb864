//! Groups: validated fields, roles, and the role rules every group action checks.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Invalid, bounded_text};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct GroupId(pub i64);

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Member => 1,
        }
    }

    pub fn is_admin_or_owner(self) -> bool {
        self.rank() >= Role::Admin.rank()
    }

    /// Kick and mute: owners and admins act on strictly lower roles only, so an admin
    /// can never touch the owner or another admin.
    pub fn can_moderate(self, target: Role) -> bool {
        self.is_admin_or_owner() && self.rank() > target.rank()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinPolicy {
    /// Anyone may join at once; any member may invite.
    Open,
    /// Joining creates a request that an admin approves; admins invite.
    Approval,
    /// Only admins' invitations let people in.
    InviteOnly,
}

impl JoinPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinPolicy::Open => "open",
            JoinPolicy::Approval => "approval",
            JoinPolicy::InviteOnly => "invite_only",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(JoinPolicy::Open),
            "approval" => Some(JoinPolicy::Approval),
            "invite_only" => Some(JoinPolicy::InviteOnly),
            _ => None,
        }
    }

    /// Who may invite under this policy.
    pub fn can_invite(self, role: Role) -> bool {
        match self {
            JoinPolicy::Open => true,
            JoinPolicy::Approval | JoinPolicy::InviteOnly => role.is_admin_or_owner(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistoryVisibility {
    /// New members read the whole history.
    All,
    /// New members read messages from their join on.
    SinceJoin,
}

impl HistoryVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryVisibility::All => "all",
            HistoryVisibility::SinceJoin => "since_join",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(HistoryVisibility::All),
            "since_join" => Some(HistoryVisibility::SinceJoin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "name", 1, 64, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription(String);

impl GroupDescription {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "description", 0, 500, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement(String);

impl Announcement {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "announcement", 0, 2000, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A short free-text message (join request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortMessage(String);

impl ShortMessage {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text(raw, "message", 0, 200, true).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_moderate_members_only_and_owners_moderate_admins_too() {
        use Role::*;
        let allowed: Vec<(Role, Role)> = [Owner, Admin, Member]
            .into_iter()
            .flat_map(|actor| [Owner, Admin, Member].into_iter().map(move |target| (actor, target)))
            .filter(|(actor, target)| actor.can_moderate(*target))
            .collect();
        assert_eq!(allowed, [(Owner, Admin), (Owner, Member), (Admin, Member)]);
    }

    #[test]
    fn only_open_groups_let_members_invite() {
        assert!(JoinPolicy::Open.can_invite(Role::Member));
        assert!(!JoinPolicy::Approval.can_invite(Role::Member));
        assert!(!JoinPolicy::InviteOnly.can_invite(Role::Member));
        assert!(JoinPolicy::InviteOnly.can_invite(Role::Admin));
    }

    #[test]
    fn group_texts_are_bounded() {
        assert!(GroupName::parse("").is_err());
        assert!(GroupName::parse(&"g".repeat(65)).is_err());
        assert!(Announcement::parse(&"a".repeat(2000)).is_ok());
        assert!(Announcement::parse(&"a".repeat(2001)).is_err());
        assert!(GroupDescription::parse("").is_ok());
    }

    #[test]
    fn enum_names_round_trip() {
        for policy in [JoinPolicy::Open, JoinPolicy::Approval, JoinPolicy::InviteOnly] {
            assert_eq!(JoinPolicy::parse(policy.as_str()), Some(policy));
        }
        for role in [Role::Owner, Role::Admin, Role::Member] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
