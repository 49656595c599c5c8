//! State shared by every service listener: the current routing table, the upstream endpoints (connection
//! pools and passive health) and the measurements. The control plane never holds a lock the hot path waits on.

use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

use crate::routing::RoutingTable;
use crate::snapshot::Snapshot;
use crate::stats::{SnapshotError, StatsRegistry};
use crate::upstream::EndpointRegistry;

/// The data plane's shared state.
pub(crate) struct DataPlane {
    pub(crate) table: ArcSwap<RoutingTable>,
    pub(crate) stats: StatsRegistry,
    pub(crate) endpoints: EndpointRegistry,
}

impl DataPlane {
    /// A data plane whose pools and measurements have one shard per worker.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            table: ArcSwap::from_pointee(RoutingTable::empty()),
            stats: StatsRegistry::new(workers),
            endpoints: EndpointRegistry::new(workers),
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
            instances: self.endpoints.snapshot(),
        })
    }
}

fn unix_millis(at: SystemTime) -> u64 {
    // A clock before 1970 is a broken host; report 0 rather than fail the snapshot.
    at.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
