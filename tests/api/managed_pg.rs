//! The managed cluster through its library API, which `goim` and this harness share.

use goim::pg::{ManagedPostgres, PgError};
use sqlx::{Connection, Executor, PgConnection};

use crate::support::{cluster, new_data_dir};

fn options(dir: &std::path::Path) -> goim::pg::ClusterOptions {
    let mut options = crate::support::cluster_options(dir.to_path_buf(), false);
    // These tests manage the lifetime themselves.
    options.guard_exe = None;
    options
}

async fn query_one(pg: &ManagedPostgres, sql: &str) -> i64 {
    let mut conn = PgConnection::connect_with(&pg.connect_options("postgres")).await.unwrap();
    let value = sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    value
}

#[tokio::test]
async fn a_restarted_cluster_keeps_its_data() {
    let dir = new_data_dir();
    let pg = ManagedPostgres::start(options(&dir)).await.expect("first start");
    assert!(dir.join("postgres").join("PG_VERSION").is_file());
    let mut conn = PgConnection::connect_with(&pg.connect_options("postgres")).await.unwrap();
    conn.execute("CREATE TABLE kept (v bigint); INSERT INTO kept VALUES (42)").await.unwrap();
    conn.close().await.unwrap();
    pg.stop().await.expect("clean stop");
    assert!(!dir.join("postgres").join("postmaster.pid").exists(), "stop removes the pid file");

    let pg = ManagedPostgres::start(options(&dir)).await.expect("second start");
    assert_eq!(query_one(&pg, "SELECT v FROM kept").await, 42);
    pg.stop().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_stale_postmaster_pid_is_recovered_from() {
    let dir = new_data_dir();
    let pg = ManagedPostgres::start(options(&dir)).await.unwrap();
    pg.stop().await.unwrap();
    // What a crash leaves: a pid file naming a process that does not exist (this PID is
    // above every OS's PID limit).
    let dead_pid = 2_147_483_000_u32;
    let pid_file = dir.join("postgres").join("postmaster.pid");
    std::fs::write(&pid_file, format!("{dead_pid}\n{}\n0\n5432\n", dir.join("postgres").display())).unwrap();

    let pg = ManagedPostgres::start(options(&dir)).await.expect("start despite the stale pid file");
    assert_eq!(query_one(&pg, "SELECT 1::bigint").await, 1);
    pg.stop().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_orphaned_postgres_from_a_dead_goim_is_stopped_and_replaced() {
    let dir = new_data_dir();
    let orphan = ManagedPostgres::start(options(&dir)).await.unwrap();
    let orphan_pid = orphan.pid().unwrap();
    // GOIM "dies": no stop, no guard. The postmaster keeps running; the lock is released.
    drop(orphan);

    let pg = ManagedPostgres::start(options(&dir)).await.expect("start over the orphan");
    assert_ne!(pg.pid().unwrap(), orphan_pid);
    #[cfg(target_os = "linux")]
    assert!(!crate::support::binary::process_alive(orphan_pid), "the orphan was stopped");
    assert_eq!(query_one(&pg, "SELECT 1::bigint").await, 1);
    pg.stop().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_second_goim_cannot_take_a_data_dir_in_use() {
    let dir = new_data_dir();
    let pg = ManagedPostgres::start(options(&dir)).await.unwrap();
    let second = ManagedPostgres::start(options(&dir)).await;
    assert!(matches!(second, Err(PgError::DataDirInUse { .. })), "got {:?}", second.err());
    // The first one is untouched.
    assert_eq!(query_one(&pg, "SELECT 1::bigint").await, 1);
    pg.stop().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_shared_test_cluster_runs_with_durability_off() {
    // Guards the harness itself: the per-run cluster must be the fast one.
    let options = cluster().create_database().await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&mut conn).await.unwrap();
    assert_eq!(fsync, "off");
}

#[tokio::test]
async fn migrations_are_not_held_to_the_statement_timeout() {
    // A migration may rewrite a large table for minutes; requests keep their timeout.
    let clone = cluster().create_database().await;
    let name = format!("empty_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&clone).await.unwrap();
    admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let mut config = crate::support::test_config();
    config.database.db_statement_timeout = std::time::Duration::from_millis(1);
    let pool = goim::db::connect(&config, clone.clone().database(&name)).await.unwrap();
    goim::db::migrate(&pool).await.expect("every migration runs to its end");
    // Checked without the 1 ms timeout: a loaded machine may take longer for any statement.
    let mut migrated = PgConnection::connect_with(&clone.clone().database(&name)).await.unwrap();
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&mut migrated).await.unwrap();
    assert_eq!(applied, goim::db::MIGRATOR.iter().count() as i64);
    let slow = sqlx::query("SELECT pg_sleep(0.2)").execute(&pool).await;
    let code = slow.err().and_then(|e| e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned())));
    assert_eq!(code.as_deref(), Some("57014"), "the pool's own connections keep their timeout");
}
