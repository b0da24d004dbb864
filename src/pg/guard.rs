//! `goim pg-guard`: a tiny watcher process started beside the managed cluster. It waits
//! for its standard input to close, which happens when GOIM exits for any reason
//! (including SIGKILL), then stops the cluster if it still runs. Without it, a crashed
//! GOIM would leave an orphaned `postgres` holding the data directory.

use std::io::Read;

use super::{cluster::pg_ctl_stop, os};
use crate::config::PgGuardArgs;

pub fn run(args: &PgGuardArgs) -> Result<(), super::PgError> {
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    // GOIM never writes to the pipe: reading ends at EOF, when GOIM has exited.
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    let stopped = pg_ctl_stop(&args.bin_dir, &args.pgdata, os::run_as_owner_of(&args.pgdata));
    if args.remove
        && let Some(data_dir) = args.pgdata.parent()
    {
        let _ = std::fs::remove_dir_all(data_dir);
    }
    stopped
}
