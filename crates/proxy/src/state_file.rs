//! The proxy's own copy of the last applied table, so it restarts with its routes while the
//! daemon is away, and the `.admin` file that tells a supervisor where the admin listener is.

use std::ffi::OsString;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::routes::RouteTable;

/// Why the state file or the admin address file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Writing, syncing or renaming failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The blocking writer task did not complete (the runtime is shutting down).
    #[error("writing {} was interrupted: {source}", path.display())]
    Interrupted {
        /// The file being written.
        path: PathBuf,
        /// Why the task did not complete.
        source: tokio::task::JoinError,
    },
}

/// The table saved in `path`, or `None` (with a warning saying why) if there is none usable.
pub(crate) async fn load(path: &Path) -> Option<RouteTable> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot read the state file; ignoring it");
            return None;
        }
    };
    let table: RouteTable = match serde_json::from_slice(&bytes) {
        Ok(table) => table,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "the state file is not a route table; ignoring it");
            return None;
        }
    };
    if let Err(error) = table.validate() {
        tracing::warn!(path = %path.display(), %error, "the state file holds an invalid table; ignoring it");
        return None;
    }
    Some(table)
}

/// Saves the table so that a crash at any point leaves either the old or the new file whole.
pub(crate) async fn save(path: &Path, table: &RouteTable) -> Result<(), StateFileError> {
    // Serializing plain structs with string keys into memory cannot fail.
    let json = serde_json::to_vec_pretty(table).expect("a route table serializes to JSON");
    write_atomically(path.to_owned(), json).await
}

/// Writes `<state_file>.admin`: the bound admin address on one line.
pub(crate) async fn save_admin_address(state_file: &Path, admin: SocketAddr) -> Result<(), StateFileError> {
    write_atomically(admin_address_path(state_file), format!("{admin}\n").into_bytes()).await
}

/// `<state_file>.admin`, next to the state file.
pub fn admin_address_path(state_file: &Path) -> PathBuf {
    with_suffix(state_file, ".admin")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

async fn write_atomically(path: PathBuf, contents: Vec<u8>) -> Result<(), StateFileError> {
    let writer_path = path.clone();
    tokio::task::spawn_blocking(move || write_atomically_blocking(&writer_path, &contents))
        .await
        .map_err(|source| StateFileError::Interrupted {
            path: path.clone(),
            source,
        })?
        .map_err(|source| StateFileError::Write { path, source })
}

fn write_atomically_blocking(path: &Path, contents: &[u8]) -> io::Result<()> {
    let temporary = with_suffix(path, ".tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename is only durable once the directory entry is synced.
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saved_table_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("routes.json");
        let table = RouteTable {
            version: 7,
            services: Vec::new(),
        };
        save(&path, &table).await.expect("saved");
        assert_eq!(load(&path).await, Some(table));
        assert!(!with_suffix(&path, ".tmp").exists(), "no temporary file is left behind");
    }

    #[tokio::test]
    async fn missing_or_corrupt_files_load_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("routes.json");
        assert_eq!(load(&path).await, None);
        std::fs::write(&path, b"{\"version\":").expect("write");
        assert_eq!(load(&path).await, None);
    }

    #[tokio::test]
    async fn write_failure_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing-dir").join("routes.json");
        let error = save(&path, &RouteTable::default())
            .await
            .expect_err("parent directory does not exist");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot write {}", path.display())),
            "{error}"
        );
    }

    #[test]
    fn admin_address_file_sits_next_to_the_state_file() {
        assert_eq!(
            admin_address_path(Path::new("/var/lib/sluice/routes.json")),
            PathBuf::from("/var/lib/sluice/routes.json.admin")
        );
    }
}
