//! The operations REST and WebSocket share. Each takes the state and already-parsed
//! domain values, enforces its rules, and returns API errors only at this edge.

pub mod accounts;
pub mod admin;
pub mod blocks;
pub mod conversations;
pub mod friends;
pub mod groups;
pub mod messages;
pub mod page;
pub mod policy;
pub mod turn;
pub mod uploads;
pub mod users;
