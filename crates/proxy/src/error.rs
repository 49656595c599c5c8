//! Errors that stop the proxy from starting or from shutting down cleanly.

use std::net::SocketAddr;

use crate::config_file::ConfigFileError;
use crate::control::BindError;
use crate::routes::TableError;
use crate::state_file::StateFileError;
use crate::tls::TlsError;

/// Why [`start`](crate::start) or [`run`](crate::run) failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The admin listener could not be bound.
    #[error("cannot listen on admin address {addr}: {source}")]
    AdminBind {
        /// The configured admin address.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// `ProxyConfig::initial` was used and is not a valid table.
    #[error("the initial route table is invalid: {0}")]
    InvalidInitialTable(#[from] TableError),
    /// A service of the starting table could not be bound; the proxy refuses to run half its routes.
    #[error("cannot serve the starting route table: {0}")]
    ServiceBind(#[from] BindError),
    /// A certificate of the starting table could not be used.
    #[error("cannot serve the starting route table: {0}")]
    Tls(#[from] TlsError),
    /// The routes file given to `sluice proxy --config` could not be read.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// The worker threads could not be started.
    #[error("cannot start the worker threads: {0}")]
    Workers(std::io::Error),
    /// The admin address file could not be written.
    #[error(transparent)]
    StateFile(#[from] StateFileError),
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// A listener task panicked; the proxy stopped anyway.
    #[error("a proxy task failed: {0}")]
    TaskFailed(#[from] tokio::task::JoinError),
}
