//! Finding the PostgreSQL server binaries: `PG_BIN`, then `PATH`, then the folders the
//! common installers use, newest major version first.

use std::path::{Path, PathBuf};

use super::PgError;

const REQUIRED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

pub const NOT_FOUND_HELP: &str = "\
PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found in PG_BIN, PATH or the usual install folders.
Install PostgreSQL 15 or newer, or set DATABASE_URL to use an existing server:
  Debian/Ubuntu: sudo apt-get install -y postgresql
  Fedora:        sudo dnf install -y postgresql-server postgresql-contrib
  macOS:         brew install postgresql@17
  Windows:       winget install PostgreSQL.PostgreSQL.17   (or the EDB installer from postgresql.org)
If it is installed somewhere else, set PG_BIN to the folder that holds initdb.";

/// The folder holding `initdb`, `pg_ctl` and `postgres` for the cluster in `pgdata`.
/// An existing cluster needs its own major version (its `PG_VERSION`): installing
/// PostgreSQL 18 beside 17 must not make the next start pick 18 and fail. A new
/// cluster takes the first found, newest first.
pub fn find_bin_dir(pg_bin: Option<&Path>, pgdata: &Path) -> Result<PathBuf, PgError> {
    let wanted = std::fs::read_to_string(pgdata.join("PG_VERSION")).ok().map(|v| v.trim().to_owned());
    let candidates: Vec<PathBuf> = match pg_bin {
        Some(dir) if has_server_binaries(dir) => vec![dir.to_path_buf()],
        Some(dir) => return Err(PgError::BadPgBin(dir.to_path_buf())),
        None => {
            let on_path = std::env::var_os("PATH")
                .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
                .unwrap_or_default();
            on_path
                .into_iter()
                .chain(well_known_dirs())
                .filter(|dir| has_server_binaries(dir))
                .map(|dir| resolve_symlinked_dir(&dir))
                .collect()
        }
    };
    let Some(wanted) = wanted else {
        return candidates.into_iter().next().ok_or(PgError::BinariesNotFound);
    };
    let mut found = Vec::new();
    for dir in candidates {
        match major_version_of(&dir) {
            Some(major) if major == wanted => return Ok(dir),
            Some(major) => found.push(format!("{major} in {}", dir.display())),
            None => found.push(format!("an unknown version in {}", dir.display())),
        }
    }
    let found = if found.is_empty() { "none was found".to_owned() } else { format!("found: {}", found.join(", ")) };
    Err(PgError::MajorVersionMissing { pgdata: pgdata.to_path_buf(), wanted, found })
}

/// The major version of the binaries in `dir`, from `pg_ctl --version`
/// ("pg_ctl (PostgreSQL) 15.18" → "15").
fn major_version_of(dir: &Path) -> Option<String> {
    let output = std::process::Command::new(executable(dir, "pg_ctl")).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split("(PostgreSQL)").nth(1)?.split_whitespace().next()?;
    Some(version.split('.').next()?.to_owned())
}

fn has_server_binaries(dir: &Path) -> bool {
    REQUIRED.iter().all(|name| executable(dir, name).is_file())
}

/// The tool `name` in `dir`, with the platform's executable suffix. Public because
/// `goim-bench` finds `pgbench` next to the server binaries with it.
pub fn executable(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Debian links `/usr/local/bin/initdb` style shortcuts to the versioned folder; the
/// versioned folder is the one whose tools match each other, so follow the link. `dunce`
/// because on Windows `canonicalize` returns `\\?\C:\…` paths, which initdb and
/// postgres mishandle (they build their own paths from them).
fn resolve_symlinked_dir(dir: &Path) -> PathBuf {
    dunce::canonicalize(executable(dir, "initdb"))
        .ok()
        .and_then(|real| real.parent().map(Path::to_path_buf))
        .filter(|real_dir| has_server_binaries(real_dir))
        .unwrap_or_else(|| dir.to_path_buf())
}

fn well_known_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (root, suffix) in [
        ("/usr/lib/postgresql", "bin"),
        ("/usr/pgsql-", ""),
        ("/opt/homebrew/opt", "bin"),
        ("/usr/local/opt", "bin"),
        ("/Applications/Postgres.app/Contents/Versions", "bin"),
        ("C:\\Program Files\\PostgreSQL", "bin"),
    ] {
        dirs.extend(versioned_subdirs(root, suffix));
    }
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs.push(PathBuf::from("/opt/homebrew/bin"));
    dirs.push(PathBuf::from("/usr/local/bin"));
    dirs
}

/// `<root>/<version>/<suffix>` for every version folder, newest first. Handles both
/// `/usr/lib/postgresql/15` and prefix-style roots such as `/usr/pgsql-15` and
/// Homebrew's `postgresql@17`.
fn versioned_subdirs(root: &str, suffix: &str) -> Vec<PathBuf> {
    let root_path = Path::new(root);
    let (parent, prefix) = if root.ends_with('-') {
        match (root_path.parent(), root_path.file_name()) {
            (Some(parent), Some(prefix)) => (parent.to_path_buf(), prefix.to_string_lossy().into_owned()),
            _ => return Vec::new(),
        }
    } else {
        (root_path.to_path_buf(), String::new())
    };
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix)?;
            let rest = rest.strip_prefix("postgresql@").unwrap_or(rest);
            let major = major_version(rest)?;
            Some((major, entry.path().join(suffix)))
        })
        .collect();
    found.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    found.into_iter().map(|(_, dir)| dir).collect()
}

fn major_version(name: &str) -> Option<u32> {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_folders_are_ordered_newest_first() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9.6", "15", "17", "16"] {
            std::fs::create_dir_all(root.path().join(version).join("bin")).unwrap();
        }
        std::fs::create_dir_all(root.path().join("common")).unwrap();
        let dirs = versioned_subdirs(root.path().to_str().unwrap(), "bin");
        let names: Vec<_> =
            dirs.iter().map(|d| d.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["17", "16", "15", "9.6"]);
    }

    #[test]
    fn a_pg_bin_without_server_binaries_is_refused() {
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(find_bin_dir(Some(empty.path()), empty.path()), Err(PgError::BadPgBin(_))));
    }

    /// A folder of stand-in server binaries whose `pg_ctl --version` says `major`.
    #[cfg(unix)]
    fn fake_bin(root: &Path, major: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = root.join(major).join("bin");
        std::fs::create_dir_all(&dir).unwrap();
        for name in REQUIRED {
            let script = format!("#!/bin/sh\necho \"{name} (PostgreSQL) {major}.3\"\n");
            std::fs::write(dir.join(name), script).unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    #[cfg(unix)]
    #[test]
    fn an_existing_cluster_gets_binaries_of_its_own_major_version() {
        let root = tempfile::tempdir().unwrap();
        let (v17, v18) = (fake_bin(root.path(), "17"), fake_bin(root.path(), "18"));
        let pgdata = root.path().join("cluster");
        std::fs::create_dir_all(&pgdata).unwrap();
        std::fs::write(pgdata.join("PG_VERSION"), "17\n").unwrap();
        assert_eq!(major_version_of(&v18).as_deref(), Some("18"));
        assert_eq!(find_bin_dir(Some(&v17), &pgdata).unwrap(), v17, "PG_BIN of the right major");
        let wrong = find_bin_dir(Some(&v18), &pgdata).unwrap_err().to_string();
        assert!(wrong.contains("PostgreSQL 17") && wrong.contains("18 in"), "{wrong}");
        // A cluster not created yet takes what PG_BIN names.
        assert_eq!(find_bin_dir(Some(&v18), &root.path().join("new")).unwrap(), v18);
    }

    #[test]
    fn the_not_found_message_covers_every_os() {
        for hint in ["apt-get", "dnf", "brew", "winget"] {
            assert!(NOT_FOUND_HELP.contains(hint), "{hint} missing");
        }
    }
}
