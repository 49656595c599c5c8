//! The route table compiled for the hot path: services by listen address, schedules precomputed, rules
//! compiled, instances resolved to their pooled endpoints and stats resolved, so a request allocates none of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use http::header::{HeaderName, HeaderValue};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::affinity::{self, AffinityRanges};
use crate::balancer::WeightedSchedule;
use crate::matching::{self, Conditions, HeaderSource};
use crate::routes::{DEFAULT_ROUTE, RouteTable, ServiceRoute, SessionAffinity, TableError, UpstreamProtocol};
use crate::stats::{Recorder, RevisionStats, StatsRegistry};
use crate::upstream::{Endpoint, EndpointRegistry};

/// A [`RouteTable`] ready to route requests; swapped whole when a new table is applied.
pub(crate) struct RoutingTable {
    spec: Arc<RouteTable>,
    services: HashMap<SocketAddr, Arc<ServiceRoutes>>,
}

/// One service: its backends, weighted schedule, rules, affinity and mirror.
pub(crate) struct ServiceRoutes {
    spec: ServiceRoute,
    backends: Vec<BackendRoutes>,
    schedule: WeightedSchedule,
    rules: Vec<Rule>,
    affinity: Option<Affinity>,
    mirror: Option<MirrorRoute>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) protocol: UpstreamProtocol,
    /// Requests the lean path may have in flight on one instance connection.
    pub(crate) pipeline_depth: usize,
    tls: Option<TlsAcceptor>,
}

/// One revision: its instances, used round-robin, and where its requests are measured.
pub(crate) struct BackendRoutes {
    revision: String,
    instances: Vec<Arc<Endpoint>>,
    next_instance: AtomicUsize,
    stats: Arc<RevisionStats>,
    default_route: Arc<Recorder>,
}

struct Rule {
    conditions: Conditions,
    backend: usize,
    recorder: Arc<Recorder>,
}

enum AffinityKey {
    Cookie { name: String },
    Header(HeaderName),
}

struct Affinity {
    key: AffinityKey,
    ranges: AffinityRanges,
}

/// Mirroring compiled: which backend, which share, the in-flight bound.
struct MirrorRoute {
    backend: usize,
    percent: u64,
    methods: Vec<Method>,
    max_body_bytes: u64,
    max_in_flight: u32,
    in_flight: AtomicU32,
    seen: AtomicU64,
}

/// Where one request goes.
pub(crate) struct Decision<'a> {
    pub(crate) backend: &'a BackendRoutes,
    pub(crate) recorder: &'a Arc<Recorder>,
    /// A new user's affinity cookie, to set on the answer.
    pub(crate) set_cookie: Option<HeaderValue>,
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
    pub(crate) fn build(
        spec: RouteTable,
        previous: &RoutingTable,
        stats: &StatsRegistry,
        endpoints: &EndpointRegistry,
        mut tls: HashMap<SocketAddr, TlsAcceptor>,
    ) -> Result<Self, TableError> {
        let mut services = HashMap::with_capacity(spec.services.len());
        for service in &spec.services {
            let compiled = match previous.services.get(&service.listen) {
                Some(existing) if existing.spec == *service && service.tls.is_none() => existing.clone(),
                _ => Arc::new(ServiceRoutes::new(
                    service,
                    stats,
                    endpoints,
                    tls.remove(&service.listen),
                )?),
            };
            services.insert(service.listen, compiled);
        }
        Ok(Self {
            spec: Arc::new(spec),
            services,
        })
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
    fn new(
        spec: &ServiceRoute,
        stats: &StatsRegistry,
        endpoints: &EndpointRegistry,
        tls: Option<TlsAcceptor>,
    ) -> Result<Self, TableError> {
        let backends: Vec<BackendRoutes> = spec
            .backends
            .iter()
            .map(|backend| {
                let stats = stats.revision(&spec.name, &backend.revision);
                BackendRoutes {
                    revision: backend.revision.clone(),
                    instances: backend.instances.iter().map(|addr| endpoints.endpoint(*addr)).collect(),
                    next_instance: AtomicUsize::new(0),
                    default_route: stats.route(DEFAULT_ROUTE),
                    stats,
                }
            })
            .collect();
        let index_of = |revision: &str| spec.backends.iter().position(|b| b.revision == revision);
        let mut rules = Vec::with_capacity(spec.matches.len());
        for (index, rule) in spec.matches.iter().enumerate() {
            let conditions = Conditions::new(rule).map_err(|error| TableError::InvalidRegex {
                service: spec.name.clone(),
                what: format!("match[{index}]"),
                message: error.to_string(),
            })?;
            let unknown = || TableError::UnknownRevision {
                service: spec.name.clone(),
                what: format!("match[{index}]"),
                revision: rule.revision.clone(),
            };
            let backend = index_of(&rule.revision).ok_or_else(unknown)?;
            rules.push(Rule {
                conditions,
                backend,
                recorder: backends[backend].stats.route(&rule.route_name(index)),
            });
        }
        let weights: Vec<u32> = spec.backends.iter().map(|b| b.weight).collect();
        let affinity = match &spec.session_affinity {
            Some(SessionAffinity::CookieName(name)) => Some(AffinityKey::Cookie { name: name.clone() }),
            Some(SessionAffinity::Header(name)) => Some(AffinityKey::Header(
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| TableError::InvalidName {
                    service: spec.name.clone(),
                    what: "sessionAffinity.header".to_owned(),
                    value: name.clone(),
                    kind: "header name",
                })?,
            )),
            None => None,
        }
        .map(|key| Affinity {
            key,
            ranges: AffinityRanges::new(&weights),
        });
        let mirror = match &spec.mirror {
            Some(mirror) => Some(MirrorRoute {
                backend: index_of(&mirror.revision).ok_or_else(|| TableError::UnknownRevision {
                    service: spec.name.clone(),
                    what: "mirror".to_owned(),
                    revision: mirror.revision.clone(),
                })?,
                percent: u64::from(mirror.percent),
                methods: mirror
                    .methods
                    .iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                    .collect(),
                max_body_bytes: mirror.max_body_bytes,
                max_in_flight: mirror.max_in_flight,
                in_flight: AtomicU32::new(0),
                seen: AtomicU64::new(0),
            }),
            None => None,
        };
        Ok(Self {
            spec: spec.clone(),
            backends,
            schedule: WeightedSchedule::new(&weights),
            rules,
            affinity,
            mirror,
            connect_timeout: Duration::from_millis(spec.timeouts.connect_ms),
            request_timeout: Duration::from_millis(spec.timeouts.request_ms),
            protocol: spec.upstream_protocol,
            pipeline_depth: usize::try_from(spec.pipeline_depth).unwrap_or(1),
            tls,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// The TLS acceptor when the service is served over TLS.
    pub(crate) fn tls(&self) -> Option<&TlsAcceptor> {
        self.tls.as_ref()
    }

    /// Where a request goes: the first matching rule, else the user's affinity range, else the weighted
    /// split. `None` when no revision takes traffic.
    pub(crate) fn route<H: HeaderSource + ?Sized>(&self, headers: &H) -> Option<Decision<'_>> {
        for rule in &self.rules {
            if rule.conditions.matches(headers) {
                let backend = self.backends.get(rule.backend)?;
                return Some(Decision {
                    backend,
                    recorder: &rule.recorder,
                    set_cookie: None,
                });
            }
        }
        let (index, set_cookie) = match &self.affinity {
            Some(affinity) => match affinity.pick(headers) {
                Some(picked) => picked,
                None => (self.schedule.pick()?, None),
            },
            None => (self.schedule.pick()?, None),
        };
        let backend = self.backends.get(index)?;
        Some(Decision {
            backend,
            recorder: &backend.default_route,
            set_cookie,
        })
    }

    /// Whether a share of the service's requests is mirrored.
    pub(crate) fn has_mirror(&self) -> bool {
        self.mirror.is_some()
    }

    /// The revision mirrored copies go to.
    pub(crate) fn mirror_backend(&self) -> Option<&BackendRoutes> {
        self.backends.get(self.mirror.as_ref()?.backend)
    }

    /// The mirror's size cap for request bodies.
    pub(crate) fn mirror_max_body_bytes(&self) -> u64 {
        self.mirror.as_ref().map_or(0, |mirror| mirror.max_body_bytes)
    }

    /// The revision to copy a request to, if this request is one of the mirrored share.
    pub(crate) fn mirror_for(&self, method: &Method) -> Option<&BackendRoutes> {
        let mirror = self.mirror.as_ref()?;
        if !mirror.methods.contains(method) {
            return None;
        }
        // Exact share: the n-th eligible request is copied when n·percent crosses a multiple of 100.
        let seen = mirror.seen.fetch_add(1, Ordering::Relaxed);
        if (seen + 1) * mirror.percent / 100 == seen * mirror.percent / 100 {
            return None;
        }
        self.backends.get(mirror.backend)
    }
}

impl ServiceRoutes {
    /// Takes one of the mirror's in-flight slots, or says the copy must be dropped.
    pub(crate) fn acquire_mirror_slot(&self) -> bool {
        let Some(mirror) = &self.mirror else { return false };
        mirror
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < mirror.max_in_flight).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives back a slot taken by [`ServiceRoutes::acquire_mirror_slot`].
    pub(crate) fn release_mirror_slot(&self) {
        if let Some(mirror) = &self.mirror {
            mirror.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Affinity {
    /// The backend for the user's key and, for a new cookie user, the cookie to set.
    fn pick<H: HeaderSource + ?Sized>(&self, headers: &H) -> Option<(usize, Option<HeaderValue>)> {
        match &self.key {
            AffinityKey::Header(name) => {
                let key = headers.first(name)?;
                Some((self.ranges.pick(key)?, None))
            }
            AffinityKey::Cookie { name } => {
                if let Some(key) = matching::cookie(headers, name).filter(|key| !key.is_empty()) {
                    return Some((self.ranges.pick(key)?, None));
                }
                let key = format!("{:016x}", affinity::fresh_id());
                let backend = self.ranges.pick(key.as_bytes())?;
                let cookie = HeaderValue::try_from(format!("{name}={key}; Path=/; HttpOnly; SameSite=Lax")).ok();
                Some((backend, cookie))
            }
        }
    }
}

impl BackendRoutes {
    pub(crate) fn revision(&self) -> &str {
        &self.revision
    }

    pub(crate) fn stats(&self) -> &Arc<RevisionStats> {
        &self.stats
    }

    pub(crate) fn instance_count(&self) -> usize {
        self.instances.len()
    }

    /// Whether some instance is not ejected at `now`.
    pub(crate) fn has_healthy_instance(&self, now: Instant) -> bool {
        self.instances.iter().any(|instance| !instance.is_ejected(now))
    }

    /// The next instance in turn, skipping ejected ones; when all are ejected, the next in turn anyway
    /// (it may have come back, and a request must go somewhere).
    pub(crate) fn pick_instance(&self, now: Instant) -> Option<&Arc<Endpoint>> {
        let count = self.instances.len();
        if count == 0 {
            return None;
        }
        let first = self.next_instance.fetch_add(1, Ordering::Relaxed);
        if count == 1 {
            return self.instances.first();
        }
        for offset in 0..count {
            let instance = &self.instances[(first + offset) % count];
            if !instance.is_ejected(now) {
                if offset > 0 {
                    self.next_instance.fetch_add(offset, Ordering::Relaxed);
                }
                return Some(instance);
            }
        }
        self.instances.get(first % count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{Backend, MatchRule, StringMatch};
    use http::HeaderMap;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn web(weights: [u32; 2]) -> RouteTable {
        RouteTable {
            version: 1,
            services: vec![ServiceRoute::new(
                "web".into(),
                addr(8080),
                vec![
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
            )],
        }
    }

    fn build(spec: RouteTable, previous: &RoutingTable, stats: &StatsRegistry) -> RoutingTable {
        let endpoints = EndpointRegistry::new(1);
        RoutingTable::build(spec, previous, stats, &endpoints, HashMap::new()).expect("builds")
    }

    fn picks(table: &RoutingTable, count: usize) -> Vec<(String, SocketAddr)> {
        let service = table.service_at(addr(8080)).expect("web is routed");
        (0..count)
            .map(|_| {
                let decision = service.route(&HeaderMap::new()).expect("a backend");
                let instance = decision.backend.pick_instance(Instant::now()).expect("an instance");
                (decision.backend.revision().to_owned(), instance.addr)
            })
            .collect()
    }

    #[test]
    fn instances_of_a_revision_take_turns() {
        let stats = StatsRegistry::new(1);
        let table = build(web([1, 0]), &RoutingTable::empty(), &stats);
        let instances: Vec<SocketAddr> = picks(&table, 4).into_iter().map(|p| p.1).collect();
        assert_eq!(instances, [addr(9001), addr(9002), addr(9001), addr(9002)]);
    }

    #[test]
    fn unchanged_service_keeps_its_place_in_the_cycle() {
        let stats = StatsRegistry::new(1);
        let first = build(web([1, 1]), &RoutingTable::empty(), &stats);
        assert_eq!(picks(&first, 1)[0].0, "v1");
        let mut next = web([1, 1]);
        next.version = 2;
        let second = build(next, &first, &stats);
        assert_eq!(picks(&second, 1)[0].0, "v2", "continues the old cycle");
        let third = build(web([1, 2]), &second, &stats);
        let revisions: Vec<String> = picks(&third, 3).into_iter().map(|p| p.0).collect();
        assert_eq!(revisions, ["v2", "v1", "v2"], "a changed service starts afresh");
    }

    #[test]
    fn rules_come_before_the_split_and_the_first_match_wins() {
        let mut spec = web([100, 0]);
        let exact = |value: &str| StringMatch::Exact(value.to_owned());
        spec.services[0].matches = vec![
            MatchRule {
                name: Some("insiders".into()),
                headers: [("x-canary".to_owned(), exact("always"))].into(),
                cookies: Default::default(),
                revision: "v2".into(),
            },
            MatchRule {
                name: None,
                headers: [("x-canary".to_owned(), StringMatch::Regex(".".into()))].into(),
                cookies: Default::default(),
                revision: "v1".into(),
            },
        ];
        let stats = StatsRegistry::new(1);
        let table = build(spec, &RoutingTable::empty(), &stats);
        let service = table.service_at(addr(8080)).expect("web");
        let route = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-canary", HeaderValue::from_static(value));
            let decision = service.route(&headers).expect("routed");
            let route = stats
                .revision("web", decision.backend.revision())
                .routes()
                .into_iter()
                .find(|(_, r)| Arc::ptr_eq(r, decision.recorder))
                .map(|(name, _)| name)
                .expect("a known route");
            (decision.backend.revision().to_owned(), route)
        };
        assert_eq!(route("always"), ("v2".to_owned(), "insiders".to_owned()));
        assert_eq!(route("sometimes"), ("v1".to_owned(), "match-1".to_owned()));
        let decision = service.route(&HeaderMap::new()).expect("split");
        assert_eq!(decision.backend.revision(), "v1");
    }

    #[test]
    fn mirrored_share_is_exact() {
        let mut spec = web([100, 0]);
        spec.services[0].mirror = Some(crate::routes::Mirror {
            revision: "v2".into(),
            percent: 30,
            methods: vec!["GET".into()],
            max_body_bytes: 0,
            max_in_flight: 1,
        });
        let stats = StatsRegistry::new(1);
        let table = build(spec, &RoutingTable::empty(), &stats);
        let service = table.service_at(addr(8080)).expect("web");
        let copies = (0..100).filter(|_| service.mirror_for(&Method::GET).is_some()).count();
        assert_eq!(copies, 30);
        assert!(service.mirror_for(&Method::POST).is_none(), "POST is not mirrored");
        assert!(service.acquire_mirror_slot());
        assert!(!service.acquire_mirror_slot(), "one copy in flight at most");
        service.release_mirror_slot();
        assert!(service.acquire_mirror_slot());
    }
}
