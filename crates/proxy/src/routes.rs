//! The route table the control plane pushes, and the checks a table must pass before it is applied.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::balancer;

/// The whole routing state pushed by the control plane. Versioned: a proxy never goes back to an older version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// Monotonic version chosen by the control plane.
    pub version: u64,
    /// Every service the proxy serves; a service missing here has its listener closed.
    pub services: Vec<ServiceRoute>,
}

/// One service: the address its clients connect to and the revisions that share its traffic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoute {
    /// Service name, used as the `service` label of every metric.
    pub name: String,
    /// Address the proxy listens on for this service (a fixed port; port 0 is rejected).
    pub listen: SocketAddr,
    /// Revisions of the service and their weights.
    pub backends: Vec<Backend>,
}

/// One revision's share of a service's traffic. Weights are relative (the daemon uses percent, 0..=100); weight 0 = no new requests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Revision name, used as the `revision` label of every metric.
    pub revision: String,
    /// Relative share of new requests.
    pub weight: u32,
    /// Instances of the revision, used round-robin.
    pub instances: Vec<SocketAddr>,
}

/// Why a route table cannot be applied; nothing of it takes effect.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    /// Two services share a name, which would merge their metrics.
    #[error("service {service:?} is listed twice")]
    DuplicateService {
        /// The repeated name.
        service: String,
    },
    /// Two services want the same listen address.
    #[error("services {first:?} and {second:?} both listen on {listen}")]
    DuplicateListen {
        /// The contested address.
        listen: SocketAddr,
        /// The service listed first.
        first: String,
        /// The service listed second.
        second: String,
    },
    /// Port 0 would bind a random port that no client knows.
    #[error("service {service:?} listens on {listen}: port 0 is not allowed, clients need a fixed port")]
    PortZero {
        /// The service.
        service: String,
        /// Its listen address.
        listen: SocketAddr,
    },
    /// A revision appears twice in one service, which would merge their metrics.
    #[error("service {service:?} lists revision {revision:?} twice")]
    DuplicateRevision {
        /// The service.
        service: String,
        /// The repeated revision.
        revision: String,
    },
    /// A revision that should receive traffic has nowhere to send it.
    #[error("service {service:?}: revision {revision:?} has weight {weight} but no instances")]
    NoInstances {
        /// The service.
        service: String,
        /// The revision.
        revision: String,
        /// Its non-zero weight.
        weight: u32,
    },
    /// The weighted schedule is precomputed, so its length is bounded.
    #[error(
        "service {service:?}: weights reduced by their common divisor sum to {cycle}, more than the supported {max}"
    )]
    WeightsTooFine {
        /// The service.
        service: String,
        /// Sum of the reduced weights.
        cycle: u64,
        /// The largest supported sum.
        max: u64,
    },
}

impl RouteTable {
    /// Checks everything that can be checked without touching the network.
    pub fn validate(&self) -> Result<(), TableError> {
        let mut names = HashSet::new();
        let mut listeners: HashMap<SocketAddr, &str> = HashMap::new();
        for service in &self.services {
            if !names.insert(service.name.as_str()) {
                return Err(TableError::DuplicateService {
                    service: service.name.clone(),
                });
            }
            if service.listen.port() == 0 {
                return Err(TableError::PortZero {
                    service: service.name.clone(),
                    listen: service.listen,
                });
            }
            if let Some(first) = listeners.insert(service.listen, &service.name) {
                return Err(TableError::DuplicateListen {
                    listen: service.listen,
                    first: first.to_owned(),
                    second: service.name.clone(),
                });
            }
            service.validate()?;
        }
        Ok(())
    }
}

impl ServiceRoute {
    fn validate(&self) -> Result<(), TableError> {
        let mut revisions = HashSet::new();
        for backend in &self.backends {
            if !revisions.insert(backend.revision.as_str()) {
                return Err(TableError::DuplicateRevision {
                    service: self.name.clone(),
                    revision: backend.revision.clone(),
                });
            }
            if backend.weight > 0 && backend.instances.is_empty() {
                return Err(TableError::NoInstances {
                    service: self.name.clone(),
                    revision: backend.revision.clone(),
                    weight: backend.weight,
                });
            }
        }
        let weights: Vec<u32> = self.backends.iter().map(|b| b.weight).collect();
        let cycle = balancer::cycle_length(&weights);
        if cycle > balancer::MAX_CYCLE {
            return Err(TableError::WeightsTooFine {
                service: self.name.clone(),
                cycle,
                max: balancer::MAX_CYCLE,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn service(name: &str, port: u16, backends: Vec<Backend>) -> ServiceRoute {
        ServiceRoute {
            name: name.to_owned(),
            listen: addr(port),
            backends,
        }
    }

    fn backend(revision: &str, weight: u32, instances: &[u16]) -> Backend {
        Backend {
            revision: revision.to_owned(),
            weight,
            instances: instances.iter().map(|p| addr(*p)).collect(),
        }
    }

    fn table(services: Vec<ServiceRoute>) -> RouteTable {
        RouteTable { version: 1, services }
    }

    #[test]
    fn a_canary_table_is_valid() {
        let t = table(vec![service(
            "web",
            8080,
            vec![backend("v1", 90, &[9001, 9002]), backend("v2", 10, &[9003])],
        )]);
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn a_zero_weight_revision_may_have_no_instances() {
        let t = table(vec![service(
            "web",
            8080,
            vec![backend("v1", 100, &[9001]), backend("v2", 0, &[])],
        )]);
        assert_eq!(t.validate(), Ok(()));
    }

    #[test]
    fn rejects_tables_that_would_confuse_routing_or_metrics() {
        let cases = [
            (
                table(vec![service("web", 8080, vec![]), service("web", 8081, vec![])]),
                "service \"web\" is listed twice",
            ),
            (
                table(vec![service("a", 8080, vec![]), service("b", 8080, vec![])]),
                "services \"a\" and \"b\" both listen on 127.0.0.1:8080",
            ),
            (
                table(vec![service("a", 0, vec![])]),
                "service \"a\" listens on 127.0.0.1:0: port 0 is not allowed, clients need a fixed port",
            ),
            (
                table(vec![service(
                    "a",
                    8080,
                    vec![backend("v1", 1, &[9001]), backend("v1", 1, &[9002])],
                )]),
                "service \"a\" lists revision \"v1\" twice",
            ),
            (
                table(vec![service("a", 8080, vec![backend("v1", 5, &[])])]),
                "service \"a\": revision \"v1\" has weight 5 but no instances",
            ),
            (
                table(vec![service(
                    "a",
                    8080,
                    vec![backend("v1", 10_000, &[9001]), backend("v2", 1, &[9002])],
                )]),
                "service \"a\": weights reduced by their common divisor sum to 10001, more than the supported 10000",
            ),
        ];
        for (t, message) in cases {
            let error = t.validate().expect_err(message);
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn json_uses_camel_case_field_names() {
        let t = table(vec![service("web", 8080, vec![backend("v1", 100, &[9001])])]);
        let json = serde_json::to_value(&t).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "services": [{
                    "name": "web",
                    "listen": "127.0.0.1:8080",
                    "backends": [{"revision": "v1", "weight": 100, "instances": ["127.0.0.1:9001"]}]
                }]
            })
        );
    }
}
