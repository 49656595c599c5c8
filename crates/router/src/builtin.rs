//! The router of the embedded default: Sluice's own proxy, steered through its admin listener.

use std::net::SocketAddr;
use std::time::Duration;

use sluice_proxy::{Backend, RouteTable, ServiceRoute, SessionAffinity};
use tokio::sync::Mutex;

use crate::{Affinity, Router, RouterError, ServiceRouting};

/// Pushes whole route tables to one proxy process (`PUT /routes` on its admin listener).
///
/// The proxy owns the table: before changing it the router reads the proxy's current one, so that a restarted
/// daemon neither forgets other services nor goes back in version.
pub struct BuiltinRouter {
    admin: SocketAddr,
    client: reqwest::Client,
    // Serialises read-modify-write of the table.
    lock: Mutex<()>,
}

impl BuiltinRouter {
    /// A router for the proxy whose admin listener is at `admin`.
    pub fn new(admin: SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        BuiltinRouter {
            admin,
            client,
            lock: Mutex::new(()),
        }
    }

    /// The proxy's admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The proxy's current table.
    pub async fn current(&self) -> Result<RouteTable, RouterError> {
        let unreachable = |source| RouterError::Unreachable {
            addr: self.admin,
            source,
        };
        let response = self
            .client
            .get(format!("http://{}/routes", self.admin))
            .send()
            .await
            .map_err(unreachable)?;
        let response = self.check(response).await?;
        response.json().await.map_err(unreachable)
    }

    /// Removes a service from the proxy (its listener closes).
    pub async fn remove(&self, service: &str) -> Result<(), RouterError> {
        let _guard = self.lock.lock().await;
        let mut table = self.current().await?;
        let before = table.services.len();
        table.services.retain(|s| s.name != service);
        if table.services.len() == before {
            return Ok(());
        }
        table.version += 1;
        self.push(&table).await
    }

    async fn push(&self, table: &RouteTable) -> Result<(), RouterError> {
        let response = self
            .client
            .put(format!("http://{}/routes", self.admin))
            .json(table)
            .send()
            .await
            .map_err(|source| RouterError::Unreachable {
                addr: self.admin,
                source,
            })?;
        self.check(response).await.map(drop)
    }

    async fn check(&self, response: reqwest::Response) -> Result<reqwest::Response, RouterError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = response.text().await.unwrap_or_default();
        Err(RouterError::Refused {
            addr: self.admin,
            status: status.as_u16(),
            message,
        })
    }
}

fn service_route(routing: &ServiceRouting) -> ServiceRoute {
    let mut route = ServiceRoute::new(
        routing.service.clone(),
        routing.listen,
        routing
            .revisions
            .iter()
            .map(|r| Backend {
                revision: r.revision.clone(),
                weight: u32::from(r.weight),
                instances: r.instances.clone(),
            })
            .collect(),
    );
    route.session_affinity = routing.affinity.as_ref().map(|affinity| match affinity {
        Affinity::Cookie(name) => SessionAffinity::CookieName(name.clone()),
        Affinity::Header(name) => SessionAffinity::Header(name.clone()),
    });
    route
}

impl Router for BuiltinRouter {
    async fn apply(&self, routing: &ServiceRouting) -> Result<(), RouterError> {
        let _guard = self.lock.lock().await;
        let mut table = self.current().await?;
        let wanted = service_route(routing);
        match table.services.iter_mut().find(|s| s.name == routing.service) {
            Some(existing) if *existing == wanted => return Ok(()),
            Some(existing) => *existing = wanted,
            None => table.services.push(wanted),
        }
        table.version += 1;
        self.push(&table).await
    }
}
