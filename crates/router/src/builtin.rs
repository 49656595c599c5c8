//! The router of the embedded default: Sluice's own proxy, steered through its admin listener.

use std::net::SocketAddr;
use std::time::Duration;

use sluice_proxy::{Backend, MatchRule, Mirror, RouteTable, ServiceRoute, SessionAffinity, StringMatch};
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
        let preview = preview_name(service);
        table.services.retain(|s| s.name != service && s.name != preview);
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

/// The name of the proxy service that carries a service's blue/green preview listener.
pub fn preview_name(service: &str) -> String {
    format!("{service}:preview")
}

/// A spec's match rules as the proxy's, all sending to `revision`.
fn match_rules(route: &crate::MatchRoute) -> Vec<MatchRule> {
    let convert = |matcher: &sluice_spec::StringMatch| match (&matcher.exact, &matcher.regex) {
        (Some(exact), _) => StringMatch::Exact(exact.clone()),
        (None, Some(regex)) => StringMatch::Regex(regex.clone()),
        // The spec's validation requires one of the two; an empty exact match never matches a real value.
        (None, None) => StringMatch::Exact(String::new()),
    };
    route
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| MatchRule {
            name: Some(format!("ab-{index}")),
            headers: rule.headers.iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
            cookies: rule.cookies.iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
            revision: route.revision.clone(),
        })
        .collect()
}

/// The proxy services a routing needs: the service itself, and its preview listener if it has one.
fn service_routes(routing: &ServiceRouting) -> Vec<ServiceRoute> {
    let mut routes = vec![service_route(routing)];
    if let Some(preview) = &routing.preview {
        routes.push(ServiceRoute::new(
            preview_name(&routing.service),
            preview.listen,
            vec![Backend {
                revision: preview.revision.revision.clone(),
                weight: 100,
                instances: preview.revision.instances.clone(),
            }],
        ));
    }
    routes
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
    route.matches = routing.matches.as_ref().map(match_rules).unwrap_or_default();
    route.mirror = routing.mirror.as_ref().map(|mirror| Mirror {
        revision: mirror.revision.clone(),
        percent: u32::from(mirror.percent),
        methods: mirror.methods.clone(),
        max_body_bytes: mirror.max_body_bytes,
        max_in_flight: 256,
    });
    route
}

impl Router for BuiltinRouter {
    async fn apply(&self, routing: &ServiceRouting) -> Result<(), RouterError> {
        let _guard = self.lock.lock().await;
        let table = self.current().await?;
        let preview = preview_name(&routing.service);
        let mut next = table.clone();
        next.services.retain(|s| s.name != routing.service && s.name != preview);
        next.services.extend(service_routes(routing));
        let unchanged =
            next.services.len() == table.services.len() && next.services.iter().all(|s| table.services.contains(s));
        if unchanged {
            return Ok(());
        }
        next.version = table.version + 1;
        self.push(&next).await
    }
}
