//! Applying route tables: version rules, binding service listeners, persisting, swapping,
//! and retiring the listeners of services that left the table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinSet;

use crate::forward::{self, Origin};
use crate::plane::DataPlane;
use crate::routes::{RouteTable, TableError};
use crate::routing::RoutingTable;
use crate::server;
use crate::state_file::{self, StateFileError};

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
    listeners: Mutex<Listeners>,
}

#[derive(Default)]
struct Listeners {
    /// Stop signal of each accepting listener, by address.
    active: HashMap<SocketAddr, watch::Sender<bool>>,
    /// Accepting and draining listener tasks.
    tasks: JoinSet<()>,
}

impl Control {
    pub(crate) fn new(plane: Arc<DataPlane>, state_file: Option<PathBuf>, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            plane,
            state_file,
            shutdown,
            listeners: Mutex::new(Listeners::default()),
        }
    }

    /// Installs the table the proxy starts with; it is already persisted (or never will be).
    pub(crate) async fn install_initial(&self, table: RouteTable) -> Result<(), BindError> {
        let mut listeners = self.listeners.lock().await;
        let bound = bind_new_listeners(&table, &listeners.active).await?;
        self.install(&mut listeners, table, bound);
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
        let bound = bind_new_listeners(&table, &listeners.active).await?;
        if let Some(path) = &self.state_file {
            state_file::save(path, &table).await?;
        }
        let version = table.version;
        self.install(&mut listeners, table, bound);
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

    fn install(&self, listeners: &mut Listeners, table: RouteTable, bound: Vec<(SocketAddr, TcpListener)>) {
        let routing = RoutingTable::build(table, &self.plane.table.load(), &self.plane.stats);
        let routed: Vec<SocketAddr> = routing.spec().services.iter().map(|s| s.listen).collect();
        tracing::info!(version = routing.version(), "route table applied");
        self.plane.table.store(Arc::new(routing));
        // Accept only after the swap, so the first connection already finds its route.
        for (listen, listener) in bound {
            let (stop, stopped) = watch::channel(false);
            listeners.active.insert(listen, stop);
            listeners.tasks.spawn(self.serve_service(listen, listener, stopped));
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
    }

    fn serve_service(
        &self,
        listen: SocketAddr,
        listener: TcpListener,
        mut stopped: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let plane = self.plane.clone();
        let mut shutdown = self.shutdown.clone();
        let stop = async move {
            tokio::select! {
                () = server::signalled(&mut stopped) => {}
                () = server::signalled(&mut shutdown) => {}
            }
        };
        server::serve(
            listener,
            move |peer| {
                let plane = plane.clone();
                let origin = Origin::new(listen, peer);
                service_fn(move |request| forward::forward(plane.clone(), origin.clone(), request))
            },
            stop,
        )
    }
}

/// Binds every listen address of `table` not already served; on failure the ones bound so far
/// are dropped, so a rejected table leaves no trace.
async fn bind_new_listeners(
    table: &RouteTable,
    active: &HashMap<SocketAddr, watch::Sender<bool>>,
) -> Result<Vec<(SocketAddr, TcpListener)>, BindError> {
    let mut bound = Vec::new();
    for service in &table.services {
        if active.contains_key(&service.listen) {
            continue;
        }
        let listener = TcpListener::bind(service.listen).await.map_err(|source| BindError {
            service: service.name.clone(),
            listen: service.listen,
            source,
        })?;
        bound.push((service.listen, listener));
    }
    Ok(bound)
}
