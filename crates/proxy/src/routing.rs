//! The route table compiled for the hot path: services by listen address, schedules precomputed,
//! upstream authorities pre-parsed and stats resolved, so a request allocates none of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::uri::Authority;

use crate::balancer::WeightedSchedule;
use crate::routes::{RouteTable, ServiceRoute};
use crate::stats::{RevisionStats, StatsRegistry};

/// A [`RouteTable`] ready to route requests; swapped whole when a new table is applied.
pub(crate) struct RoutingTable {
    spec: Arc<RouteTable>,
    services: HashMap<SocketAddr, Arc<ServiceRoutes>>,
}

/// One service's backends and its weighted schedule.
pub(crate) struct ServiceRoutes {
    spec: ServiceRoute,
    backends: Vec<BackendRoutes>,
    schedule: WeightedSchedule,
}

/// One revision: its instances, used round-robin, and where its requests are measured.
pub(crate) struct BackendRoutes {
    revision: String,
    instances: Vec<Instance>,
    next_instance: AtomicUsize,
    stats: Arc<RevisionStats>,
}

/// One instance of a revision.
pub(crate) struct Instance {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: Authority,
}

impl RoutingTable {
    pub(crate) fn empty() -> Self {
        Self {
            spec: Arc::new(RouteTable::default()),
            services: HashMap::new(),
        }
    }

    /// Compiles a validated table. Services whose route did not change keep their compiled form,
    /// so their weighted schedule carries on where it was instead of restarting its cycle.
    pub(crate) fn build(spec: RouteTable, previous: &RoutingTable, stats: &StatsRegistry) -> Self {
        let services = spec
            .services
            .iter()
            .map(|service| {
                let compiled = match previous.services.get(&service.listen) {
                    Some(existing) if existing.spec == *service => existing.clone(),
                    _ => Arc::new(ServiceRoutes::new(service, stats)),
                };
                (service.listen, compiled)
            })
            .collect();
        Self {
            spec: Arc::new(spec),
            services,
        }
    }

    /// The table as the control plane pushed it.
    pub(crate) fn spec(&self) -> &Arc<RouteTable> {
        &self.spec
    }

    pub(crate) fn version(&self) -> u64 {
        self.spec.version
    }

    /// The service served on a listen address, if the table still routes one there.
    pub(crate) fn service_at(&self, listen: SocketAddr) -> Option<&Arc<ServiceRoutes>> {
        self.services.get(&listen)
    }
}

impl ServiceRoutes {
    fn new(spec: &ServiceRoute, stats: &StatsRegistry) -> Self {
        let backends = spec
            .backends
            .iter()
            .map(|backend| BackendRoutes {
                revision: backend.revision.clone(),
                instances: backend
                    .instances
                    .iter()
                    .map(|addr| Instance {
                        addr: *addr,
                        authority: authority_of(*addr),
                    })
                    .collect(),
                next_instance: AtomicUsize::new(0),
                stats: stats.revision(&spec.name, &backend.revision),
            })
            .collect();
        let weights: Vec<u32> = spec.backends.iter().map(|b| b.weight).collect();
        Self {
            spec: spec.clone(),
            backends,
            schedule: WeightedSchedule::new(&weights),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// The revision and instance for the next request, or `None` when no revision takes traffic.
    pub(crate) fn pick(&self) -> Option<(&BackendRoutes, &Instance)> {
        let backend = self.backends.get(self.schedule.pick()?)?;
        let instance = backend.pick_instance()?;
        Some((backend, instance))
    }
}

impl BackendRoutes {
    pub(crate) fn revision(&self) -> &str {
        &self.revision
    }

    pub(crate) fn stats(&self) -> &RevisionStats {
        &self.stats
    }

    fn pick_instance(&self) -> Option<&Instance> {
        if self.instances.is_empty() {
            return None;
        }
        let position = self.next_instance.fetch_add(1, Ordering::Relaxed) % self.instances.len();
        self.instances.get(position)
    }
}

fn authority_of(addr: SocketAddr) -> Authority {
    // A socket address always renders as a valid authority (`1.2.3.4:80` or `[::1]:80`).
    Authority::try_from(addr.to_string().as_str()).expect("socket address is a valid authority")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::Backend;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn web(weights: [u32; 2]) -> RouteTable {
        RouteTable {
            version: 1,
            services: vec![ServiceRoute {
                name: "web".into(),
                listen: addr(8080),
                backends: vec![
                    Backend {
                        revision: "v1".into(),
                        weight: weights[0],
                        instances: vec![addr(9001), addr(9002)],
                    },
                    Backend {
                        revision: "v2".into(),
                        weight: weights[1],
                        instances: vec![addr(9003)],
                    },
                ],
            }],
        }
    }

    fn picks(table: &RoutingTable, count: usize) -> Vec<(String, SocketAddr)> {
        let service = table.service_at(addr(8080)).expect("web is routed");
        (0..count)
            .map(|_| {
                let (backend, instance) = service.pick().expect("a backend");
                (backend.revision().to_owned(), instance.addr)
            })
            .collect()
    }

    #[test]
    fn instances_of_a_revision_take_turns() {
        let stats = StatsRegistry::default();
        let table = RoutingTable::build(web([1, 0]), &RoutingTable::empty(), &stats);
        let instances: Vec<SocketAddr> = picks(&table, 4).into_iter().map(|p| p.1).collect();
        assert_eq!(instances, [addr(9001), addr(9002), addr(9001), addr(9002)]);
    }

    #[test]
    fn unchanged_service_keeps_its_place_in_the_cycle() {
        let stats = StatsRegistry::default();
        let first = RoutingTable::build(web([1, 1]), &RoutingTable::empty(), &stats);
        assert_eq!(picks(&first, 1)[0].0, "v1");
        let mut next = web([1, 1]);
        next.version = 2;
        let second = RoutingTable::build(next, &first, &stats);
        assert_eq!(picks(&second, 1)[0].0, "v2", "continues the old cycle");
        let third = RoutingTable::build(web([1, 2]), &second, &stats);
        let revisions: Vec<String> = picks(&third, 3).into_iter().map(|p| p.0).collect();
        assert_eq!(revisions, ["v2", "v1", "v2"], "a changed service starts afresh");
    }

    #[test]
    fn authority_of_ipv6_is_bracketed() {
        let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 9000));
        assert_eq!(authority_of(v6).as_str(), "[::1]:9000");
    }
}
