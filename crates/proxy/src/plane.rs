//! State shared by every service listener: the current routing table, the upstream connection
//! pool and the measurements. The control plane never holds a lock the hot path waits on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::routing::RoutingTable;
use crate::snapshot::Snapshot;
use crate::stats::{SnapshotError, StatsRegistry};

/// Connecting to a loopback or LAN instance takes microseconds; an instance that takes this long
/// is as good as down, and the client should get its 502 rather than hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle upstream connections are kept this long for reuse by later requests.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The data plane's shared state.
pub(crate) struct DataPlane {
    pub(crate) table: ArcSwap<RoutingTable>,
    pub(crate) client: Client<HttpConnector, Incoming>,
    pub(crate) stats: StatsRegistry,
}

impl DataPlane {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            table: ArcSwap::from_pointee(RoutingTable::empty()),
            client,
            stats: StatsRegistry::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> Result<Snapshot, SnapshotError> {
        let routes_version = self.table.load().version();
        let revisions = self
            .stats
            .all()
            .iter()
            .map(|stats| stats.snapshot())
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            taken_at_unix_ms: unix_millis(SystemTime::now()),
            routes_version,
            revisions,
        })
    }
}

fn unix_millis(at: SystemTime) -> u64 {
    // A clock before 1970 is a broken host; report 0 rather than fail the snapshot.
    at.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
