//! Typed errors of the platform and of the ledgers it writes to.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use thiserror::Error;

use crate::model::RevisionKey;

/// Why a platform operation failed.
#[derive(Debug, Error)]
pub enum PlatformError {
    /// A service or revision name that would escape the logs directory.
    #[error(
        "{what} name {value:?} cannot be used as a directory name: it must be non-empty, not \".\" or \"..\", and contain no '/' or NUL"
    )]
    InvalidName {
        /// Which name: "service" or "revision".
        what: &'static str,
        /// The name as given.
        value: String,
    },
    /// A template no instance could be started from.
    #[error("revision {key}: {problem}")]
    InvalidTemplate {
        /// The revision being started.
        key: RevisionKey,
        /// What is wrong with its template.
        problem: &'static str,
    },
    /// `start` met a revision whose stop has not completed.
    #[error("revision {key} is being stopped; finish stopping it before starting it again")]
    Stopping {
        /// The revision being stopped.
        key: RevisionKey,
    },
    /// The directory of an instance's log file could not be created.
    #[error("cannot create log directory {}: {source}", .path.display())]
    CreateLogDir {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// An instance's log file could not be opened for appending.
    #[error("cannot open log file {}: {source}", .path.display())]
    OpenLog {
        /// The log file.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {}: {source}", .program.display())]
    Spawn {
        /// The program as given.
        program: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A process's start time could not be read, so it could not be told from a later process
    /// reusing its pid (a process just spawned is killed then).
    #[error("cannot read the start time of process {pid} from /proc/{pid}/stat")]
    UnreadableStartTime {
        /// The process.
        pid: u32,
    },
    /// A pid that can never belong to an instance (0, 1, out of range, or the daemon's own).
    #[error("refusing to signal pid {pid}: it cannot be an instance's process")]
    InvalidPid {
        /// The refused pid.
        pid: u32,
    },
    /// A signal could not be sent.
    #[error("cannot send {signal} to process {pid} or its group: {source}")]
    Signal {
        /// The process (and group leader) signalled.
        pid: u32,
        /// The signal's name.
        signal: &'static str,
        /// What the kernel said.
        source: Errno,
    },
    /// A process survived SIGKILL for longer than it should.
    #[error("process {pid} or a member of its group still runs {waited:?} after SIGKILL")]
    StillRunning {
        /// The process (and group leader).
        pid: u32,
        /// How long it was waited for after SIGKILL.
        waited: Duration,
    },
    /// No loopback port could be reserved.
    #[error("cannot reserve a free port on 127.0.0.1: {source}")]
    FreePort {
        /// What the operating system said.
        source: io::Error,
    },
    /// The HTTP client for readiness probes could not be built.
    #[error("cannot build the readiness-probe HTTP client: {source}")]
    ProbeClient {
        /// What reqwest said.
        source: reqwest::Error,
    },
    /// The ledger could not record, forget or load processes.
    #[error("process ledger: {0}")]
    Ledger(#[from] LedgerError),
}

/// Why a [`Ledger`](crate::Ledger) operation failed; ledgers other than this crate's construct it.
#[derive(Debug, Error)]
#[error("{context}: {source}")]
pub struct LedgerError {
    context: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl LedgerError {
    /// An error saying what the ledger was doing (`context`) and what went wrong (`source`,
    /// which may also be a plain message).
    pub fn new(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            context: context.into(),
            source: source.into(),
        }
    }
}
