//! Applying route tables: version rules, binding service listeners, persisting, swapping,
//! and retiring the listeners of services that left the table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

use crate::error::ProxyError;
use crate::forward::{self, Origin};
use crate::plane::DataPlane;
use crate::routes::{RouteTable, TableError};
use crate::routing::RoutingTable;
use crate::server;
use crate::state_file::{self, StateFileError};
use crate::tls::{self, TlsError};
use crate::workers;

/// Why a pushed table was not applied; when this is returned nothing changed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error("invalid route table: {0}")]
    Invalid(#[from] TableError),
    #[error("route table version {offered} is older than the applied version {applied}")]
    Stale { offered: u64, applied: u64 },
    #[error("route table version {version} is already applied with different content; push it with a higher version")]
    Conflicting { version: u64 },
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("route table not applied because it could not be persisted: {0}")]
    Persist(#[from] StateFileError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A service's listen address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen} for service {service:?}: {source}")]
pub struct BindError {
    /// The service.
    pub service: String,
    /// The address.
    pub listen: SocketAddr,
    /// Why binding failed.
    pub source: std::io::Error,
}

/// The outcome of a push that was accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The table is now in effect.
    Swapped { version: u64 },
    /// The same table was already in effect.
    Unchanged { version: u64 },
}

/// Owns the service listeners and serializes table changes.
pub(crate) struct Control {
    plane: Arc<DataPlane>,
    state_file: Option<PathBuf>,
    shutdown: watch::Receiver<bool>,
    /// The runtime of each worker; every service gets one listener socket per worker.
    workers: Vec<Handle>,
    listeners: Mutex<Listeners>,
}

#[derive(Default)]
struct Listeners {
    /// Stop signal of each accepting listener, by address.
    active: HashMap<SocketAddr, watch::Sender<bool>>,
    /// Accepting and draining listener tasks.
    tasks: JoinSet<()>,
}

/// A table checked, compiled and bound, ready to take effect.
struct Prepared {
    routing: RoutingTable,
    bound: Vec<(SocketAddr, Vec<std::net::TcpListener>)>,
}

impl Control {
    pub(crate) fn new(
        plane: Arc<DataPlane>,
        state_file: Option<PathBuf>,
        shutdown: watch::Receiver<bool>,
        workers: Vec<Handle>,
    ) -> Self {
        Self {
            plane,
            state_file,
            shutdown,
            workers,
            listeners: Mutex::new(Listeners::default()),
        }
    }

    /// Installs the table the proxy starts with; it is already persisted (or never will be).
    pub(crate) async fn install_initial(&self, table: RouteTable) -> Result<(), ProxyError> {
        table.validate()?;
        let mut listeners = self.listeners.lock().await;
        let prepared = self.prepare::<ProxyError>(table, &listeners)?;
        self.install(&mut listeners, prepared);
        Ok(())
    }

    /// Applies a pushed table: a newer version replaces the current one, the same one is a no-op.
    pub(crate) async fn apply(&self, table: RouteTable) -> Result<Applied, ApplyError> {
        table.validate()?;
        let mut listeners = self.listeners.lock().await;
        let current = self.plane.table.load().spec().clone();
        if table.version < current.version {
            return Err(ApplyError::Stale {
                offered: table.version,
                applied: current.version,
            });
        }
        if table.version == current.version {
            return if table == *current {
                Ok(Applied::Unchanged { version: table.version })
            } else {
                Err(ApplyError::Conflicting { version: table.version })
            };
        }
        let prepared = self.prepare::<ApplyError>(table, &listeners)?;
        if let Some(path) = &self.state_file {
            state_file::save(path, prepared.routing.spec()).await?;
        }
        let version = prepared.routing.version();
        self.install(&mut listeners, prepared);
        Ok(Applied::Swapped { version })
    }

    /// Waits for every listener task, which ends once shutdown is signalled and connections drained.
    pub(crate) async fn wait_for_listeners(&self) -> Result<(), tokio::task::JoinError> {
        let mut listeners = self.listeners.lock().await;
        listeners.active.clear();
        let mut first_failure = Ok(());
        while let Some(joined) = listeners.tasks.join_next().await {
            if first_failure.is_ok() {
                first_failure = joined;
            }
        }
        first_failure
    }

    fn prepare<E>(&self, table: RouteTable, listeners: &Listeners) -> Result<Prepared, E>
    where
        E: From<TlsError> + From<BindError> + From<TableError>,
    {
        let tls = tls::load_all(&table)?;
        let bound = self.bind_new_listeners(&table, &listeners.active)?;
        let routing = RoutingTable::build(
            table,
            &self.plane.table.load(),
            &self.plane.stats,
            &self.plane.endpoints,
            tls,
        )?;
        Ok(Prepared { routing, bound })
    }

    fn install(&self, listeners: &mut Listeners, prepared: Prepared) {
        let Prepared { routing, bound } = prepared;
        let routed: Vec<SocketAddr> = routing.spec().services.iter().map(|s| s.listen).collect();
        tracing::info!(version = routing.version(), "route table applied");
        self.plane.table.store(Arc::new(routing));
        // Accept only after the swap, so the first connection already finds its route.
        for (listen, sockets) in bound {
            let (stop, stopped) = watch::channel(false);
            listeners.active.insert(listen, stop);
            for (socket, worker) in sockets.into_iter().zip(&self.workers) {
                listeners
                    .tasks
                    .spawn_on(self.serve_service(listen, socket, stopped.clone()), worker);
            }
        }
        listeners.active.retain(|listen, stop| {
            let keep = routed.contains(listen);
            if !keep {
                tracing::info!(%listen, "service left the route table; closing its listener");
                stop.send_replace(true);
            }
            keep
        });
        while listeners.tasks.try_join_next().is_some() {}
        self.plane.stats.forget_unused();
        self.plane.endpoints.forget_unused();
    }

    fn serve_service(
        &self,
        listen: SocketAddr,
        socket: std::net::TcpListener,
        mut stopped: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let plane = self.plane.clone();
        let mut shutdown = self.shutdown.clone();
        async move {
            // Registered here, on the worker's own runtime, so its I/O is driven by that worker.
            let listener = match TcpListener::from_std(socket) {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%listen, %error, "cannot serve a bound listener");
                    return;
                }
            };
            let stop = async move {
                tokio::select! {
                    () = server::signalled(&mut stopped) => {}
                    () = server::signalled(&mut shutdown) => {}
                }
            };
            let tls_plane = plane.clone();
            let lean = server::Lean {
                plane: plane.clone(),
                listen,
            };
            server::serve(
                listener,
                move || {
                    let table = tls_plane.table.load();
                    table.service_at(listen).and_then(|service| service.tls().cloned())
                },
                move |peer, tls| {
                    let plane = plane.clone();
                    let origin = Origin::new(listen, peer, tls);
                    service_fn(move |request| forward::forward(plane.clone(), origin.clone(), request))
                },
                Some(lean),
                stop,
            )
            .await;
        }
    }

    /// Binds every listen address of `table` not already served, one socket per worker; on failure the
    /// ones bound so far are dropped, so a rejected table leaves no trace.
    fn bind_new_listeners(
        &self,
        table: &RouteTable,
        active: &HashMap<SocketAddr, watch::Sender<bool>>,
    ) -> Result<Vec<(SocketAddr, Vec<std::net::TcpListener>)>, BindError> {
        let mut bound = Vec::new();
        for service in &table.services {
            if active.contains_key(&service.listen) {
                continue;
            }
            let sockets = workers::bind(service.listen, self.workers.len()).map_err(|source| BindError {
                service: service.name.clone(),
                listen: service.listen,
                source,
            })?;
            bound.push((service.listen, sockets));
        }
        Ok(bound)
    }
}
