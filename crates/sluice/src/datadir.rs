//! The data directory: everything one Sluice installation keeps on disk, and where it is.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Paths inside a data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

/// What a running daemon publishes about itself, so the CLI and `sluice down` can find it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonInfo {
    /// The daemon's pid.
    pub pid: u32,
    /// The kernel's start time of that pid, to tell a reused pid apart.
    pub start_time: u64,
    /// Where its HTTP API listens.
    pub api: SocketAddr,
}

impl DataDir {
    /// The data directory at `root` (not created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// Creates the directory tree if needed.
    pub fn create(&self) -> Result<()> {
        for dir in [self.root.clone(), self.logs(), self.proxy_dir()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("sluice.db")
    }

    /// The API token mutating calls must present.
    pub fn token_file(&self) -> PathBuf {
        self.root.join("token")
    }

    /// Where the running daemon describes itself.
    pub fn daemon_file(&self) -> PathBuf {
        self.root.join("daemon.json")
    }

    /// Log files of the proxy and of every revision's instances.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The proxy's own state.
    pub fn proxy_dir(&self) -> PathBuf {
        self.root.join("proxy")
    }

    /// The proxy's route table file, which it restores on restart.
    pub fn proxy_state(&self) -> PathBuf {
        self.proxy_dir().join("routes.json")
    }

    /// The running daemon's self-description, if one has published it.
    pub fn daemon_info(&self) -> Result<DaemonInfo> {
        let path = self.daemon_file();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no daemon found for {} (is `sluice serve --data-dir {}` running?)",
                self.root.display(),
                self.root.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// The API token, creating a random one (readable by the owner only) on first use.
    pub fn token(&self, create: bool) -> Result<String> {
        let path = self.token_file();
        match std::fs::read_to_string(&path) {
            Ok(token) => Ok(token.trim().to_string()),
            Err(error) if create && error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot draw a random token: {e}"))?;
                let token = hex::encode(bytes);
                write_private(&path, &token)?;
                Ok(token)
            }
            Err(error) => Err(error).with_context(|| format!("cannot read the API token {}", path.display())),
        }
    }
}

/// Writes a file only its owner can read, atomically.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
