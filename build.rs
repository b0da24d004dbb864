//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!()` embeds
//! `migrations/` at compile time, and cargo reruns a macro only when a file it already
//! knows about changes, so a new migration file alone left the binary and the tests
//! migrating to the previous schema.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
