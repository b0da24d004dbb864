//! One throwaway PostgreSQL cluster per test run, started by GOIM's own managed-cluster
//! code with fsync off. A template database is migrated once; each test clones it.
//! The cluster's guard process stops it and deletes its folder when the test binary
//! exits, because Rust tests have no global teardown.

use std::{path::PathBuf, sync::OnceLock};

use goim::{
    db,
    pg::{self, ClusterOptions, ManagedPostgres},
};
use sqlx::{Connection, Executor, PgConnection, postgres::PgConnectOptions, postgres::PgPoolOptions};

const TEMPLATE: &str = "goim_template";

pub struct TestCluster {
    pg: ManagedPostgres,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();

/// The run's cluster, started on first use. Started on a thread of its own because
/// each `#[tokio::test]` has its own runtime and the cluster must outlive all of them.
pub fn cluster() -> &'static TestCluster {
    let started = CLUSTER
        .get_or_init(|| std::thread::spawn(start).join().unwrap_or_else(|_| Err("cluster start-up panicked".into())));
    match started {
        Ok(cluster) => cluster,
        Err(error) => panic!("cannot start the test PostgreSQL cluster: {error}"),
    }
}

/// A new empty folder other users may enter (the cluster runs as an unprivileged user
/// when the tests run as root). The caller removes it, or a guard does.
pub fn new_data_dir() -> PathBuf {
    let dir = tempfile::Builder::new().prefix("goim-test-").tempdir().expect("temp dir").keep();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    }
    dir
}

pub fn options(data_dir: PathBuf, remove_on_exit: bool) -> ClusterOptions {
    let pg_bin = std::env::var_os("PG_BIN").map(PathBuf::from);
    let bin_dir =
        pg::find_bin_dir(pg_bin.as_deref(), &pg::cluster_dir(&data_dir)).expect("PostgreSQL binaries are installed");
    ClusterOptions {
        data_dir,
        bin_dir,
        pg_user: std::env::var("GOIM_PG_USER").unwrap_or_else(|_| "postgres".into()),
        // An in-process server outlives its test: its actix worker threads keep the
        // state, and with it the pool's idle connections, until the test binary exits.
        // ~150 tests leave ~4 each; the measured peak of a full run was 522.
        max_connections: 1200,
        unsafe_fast: true,
        guard_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_goim"))),
        remove_on_exit,
    }
}

fn start() -> Result<TestCluster, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let pg = ManagedPostgres::start(options(new_data_dir(), true)).await.map_err(|e| e.to_string())?;
        let mut admin = PgConnection::connect_with(&pg.connect_options("postgres")).await.map_err(|e| e.to_string())?;
        admin.execute(format!("CREATE DATABASE {TEMPLATE}").as_str()).await.map_err(|e| e.to_string())?;
        admin.close().await.map_err(|e| e.to_string())?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(pg.connect_options(TEMPLATE))
            .await
            .map_err(|e| e.to_string())?;
        db::migrate(&pool).await.map_err(|e| format!("{e:#}"))?;
        // CREATE DATABASE ... TEMPLATE refuses while anyone is connected to the template.
        pool.close().await;
        Ok(TestCluster { pg })
    })
}

impl TestCluster {
    /// The `DATABASE_URL` of the test database at `options`, for a `goim` process.
    pub fn database_url(&self, options: &PgConnectOptions) -> String {
        let database = options.get_database().expect("a test database is named");
        self.pg.url(database).expose().to_owned()
    }

    /// A new database cloned from the migrated template.
    pub async fn create_database(&self) -> PgConnectOptions {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect_with(&self.pg.connect_options("postgres"))
            .await
            .expect("connect to the test cluster");
        admin
            .execute(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}").as_str())
            .await
            .expect("clone the template database");
        let _ = admin.close().await;
        self.pg.connect_options(&name)
    }
}
