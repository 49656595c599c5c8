//! Readiness probes: an instance is ready when `GET http://addr{path}` answers 2xx in time.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::error::PlatformError;

/// Probes instances over plain HTTP.
#[derive(Clone, Debug)]
pub(crate) struct Prober {
    client: reqwest::Client,
}

impl Prober {
    pub(crate) fn new() -> Result<Self, PlatformError> {
        // Instances listen on loopback; an HTTP_PROXY in the daemon's environment must not
        // send probes elsewhere.
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|source| PlatformError::ProbeClient { source })?;
        Ok(Self { client })
    }

    /// Probes every address at once; `result[i]` tells whether `addrs[i]` is ready.
    pub(crate) async fn probe_all(&self, addrs: &[SocketAddr], path: &str, timeout: Duration) -> Vec<bool> {
        let mut probes = JoinSet::new();
        for (position, addr) in addrs.iter().enumerate() {
            let request = self.client.get(format!("http://{addr}{path}")).timeout(timeout);
            probes.spawn(async move {
                let ready = request
                    .send()
                    .await
                    .is_ok_and(|response| response.status().is_success());
                (position, ready)
            });
        }
        let mut ready = vec![false; addrs.len()];
        // A probe task that panicked leaves its instance counted as not ready.
        while let Some(joined) = probes.join_next().await {
            if let Ok((position, answered)) = joined {
                ready[position] = answered;
            }
        }
        ready
    }
}
