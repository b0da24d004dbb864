#![allow(clippy::unwrap_used, clippy::expect_used)]

//! GOIM's integration tests: one binary, every test with its own database (cloned from a
//! migrated template) in one throwaway cluster per test run, and its own server on port 0.

mod account_deletion;
mod accounts;
mod admin;
mod architecture;
mod bench;
mod binary;
mod browser;
mod contract;
mod friends;
mod gateway;
mod groups;
mod health;
mod hostile;
mod http_errors;
mod instances;
mod managed_pg;
mod matrix;
mod messages;
mod policy;
mod profiles;
mod search;
mod session_check;
mod support;
mod uploads;
mod webhooks;
