//! Starting the proxy, running it until a signal, and shutting it down with a bounded drain.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, Admin};
use crate::control::Control;
use crate::error::ProxyError;
use crate::plane::DataPlane;
use crate::routes::RouteTable;
use crate::server;
use crate::state_file;
use crate::workers::Workers;

/// How to start a proxy.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Admin listener address; port 0 binds an ephemeral port (see [`ProxyHandle::admin_addr`]).
    pub admin: SocketAddr,
    /// Where the last applied table is persisted and restored from; `<state_file>.admin` receives
    /// the bound admin address.
    pub state_file: Option<PathBuf>,
    /// Table to serve when the state file is absent or unusable.
    pub initial: Option<RouteTable>,
    /// `None`: serve on the caller's runtime. `Some(n)`: serve on `n` threads, each with its own
    /// current-thread runtime, listener sockets (`SO_REUSEPORT` when `n > 1`), upstream connections and
    /// measurement shards; the admin listener stays on the caller's runtime.
    pub workers: Option<NonZeroUsize>,
}

/// A started proxy. Dropping it stops the proxy without draining in-flight requests; call
/// [`ProxyHandle::shutdown`] to drain.
pub struct ProxyHandle {
    admin_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    admin: JoinHandle<()>,
    control: Arc<Control>,
    workers: Workers,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl ProxyHandle {
    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Stops accepting everywhere, lets in-flight requests finish (at most 10 s) and returns.
    pub async fn shutdown(self) -> Result<(), ProxyError> {
        self.shutdown.send_replace(true);
        // The admin API drains first so no table push starts listeners behind our back.
        self.admin.await?;
        self.control.wait_for_listeners().await?;
        let workers = self.workers;
        tokio::task::spawn_blocking(move || workers.stop()).await?;
        Ok(())
    }
}

/// For tests and for embedding: start everything, return the bound admin address and a handle to stop it.
///
/// The table served is the state file's if it exists and parses, else `initial`, else empty.
pub async fn start(config: ProxyConfig) -> Result<ProxyHandle, ProxyError> {
    let ProxyConfig {
        admin,
        state_file,
        initial,
        workers,
    } = config;
    let table = starting_table(state_file.as_deref(), initial).await?;
    let admin_error = |source| ProxyError::AdminBind { addr: admin, source };
    let admin_listener = TcpListener::bind(admin).await.map_err(admin_error)?;
    let admin_addr = admin_listener.local_addr().map_err(admin_error)?;

    let workers = match workers {
        Some(count) => Workers::spawn(count).map_err(ProxyError::Workers)?,
        None => Workers::on_current_runtime(),
    };
    let plane = Arc::new(DataPlane::new(workers.count()));
    let (shutdown, shutdown_signal) = watch::channel(false);
    let control = Arc::new(Control::new(
        plane.clone(),
        state_file.clone(),
        shutdown_signal.clone(),
        workers.handles().to_vec(),
    ));
    control.install_initial(table).await?;
    if let Some(path) = &state_file {
        // Written last, so a supervisor that finds the address finds a proxy already serving.
        state_file::save_admin_address(path, admin_addr).await?;
    }

    let api = Arc::new(Admin::new(control.clone(), plane));
    let mut stop = shutdown_signal;
    let admin_task = tokio::spawn(server::serve(
        admin_listener,
        || None,
        move |_peer, _tls| {
            let api = api.clone();
            service_fn(move |request| admin::handle(api.clone(), request))
        },
        None,
        async move { server::signalled(&mut stop).await },
    ));
    tracing::info!(admin = %admin_addr, "proxy started");
    Ok(ProxyHandle {
        admin_addr,
        shutdown,
        admin: admin_task,
        control,
        workers,
    })
}

/// Runs until SIGTERM/SIGINT or the shutdown future resolves: then stops accepting, finishes in-flight requests (bounded, e.g. 10 s) and returns.
pub async fn run(config: ProxyConfig, shutdown: impl Future<Output = ()>) -> Result<(), ProxyError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(ProxyError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ProxyError::Signal)?;
    let proxy = start(config).await?;
    tokio::select! {
        () = shutdown => tracing::info!("shutdown requested"),
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    proxy.shutdown().await
}

async fn starting_table(state_file: Option<&Path>, initial: Option<RouteTable>) -> Result<RouteTable, ProxyError> {
    if let Some(path) = state_file
        && let Some(table) = state_file::load(path).await
    {
        tracing::info!(path = %path.display(), version = table.version, "restored routes from the state file");
        return Ok(table);
    }
    match initial {
        Some(table) => {
            table.validate()?;
            Ok(table)
        }
        None => Ok(RouteTable::default()),
    }
}
