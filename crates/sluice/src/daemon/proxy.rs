//! Supervision of the proxy process: adopted when it already runs, started when it does not, restarted when it
//! dies. It runs outside the daemon so user traffic never depends on the daemon being up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sluice_platform::process;
use sluice_store::{ProcessRecord, Store};
use tracing::{info, warn};

use crate::datadir::DataDir;

const RECORD: &str = "proxy";

/// The proxy process this daemon supervises.
pub struct ProxySupervisor {
    data_dir: DataDir,
    store: Arc<Store>,
    admin: SocketAddr,
}

impl ProxySupervisor {
    /// Adopts the recorded proxy if it is alive, or starts one; the admin address stays the same across restarts
    /// so the router and the metric source never lose it.
    pub async fn ensure(data_dir: DataDir, store: Arc<Store>) -> Result<ProxySupervisor> {
        let recorded = store.process(RECORD)?;
        let admin = match recorded
            .as_ref()
            .and_then(|r| r.info.get("admin")?.as_str()?.parse().ok())
        {
            Some(admin) => admin,
            None => SocketAddr::from(([127, 0, 0, 1], process::free_port()?)),
        };
        let supervisor = ProxySupervisor { data_dir, store, admin };
        match recorded {
            Some(record) if process::is_alive(record.pid, record.start_time) => {
                info!(pid = record.pid, %admin, "adopted the running proxy");
                supervisor.wait_healthy().await?;
            }
            _ => supervisor.start().await?,
        }
        Ok(supervisor)
    }

    /// The proxy's admin listener.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Restarts the proxy if it died; returns whether it did.
    pub async fn check(&self) -> Result<bool> {
        let alive = self
            .store
            .process(RECORD)?
            .is_some_and(|r| process::is_alive(r.pid, r.start_time));
        if alive {
            return Ok(false);
        }
        warn!("the proxy is not running: restarting it");
        self.start().await?;
        Ok(true)
    }

    async fn start(&self) -> Result<()> {
        let exe = std::env::current_exe().context("cannot find the sluice executable to start the proxy")?;
        let args = vec![
            "proxy".to_string(),
            "--admin".to_string(),
            self.admin.to_string(),
            "--state-file".to_string(),
            self.data_dir.proxy_state().display().to_string(),
        ];
        let env = BTreeMap::from([("SLUICE_LOG".to_string(), "warn".to_string())]);
        let log = self.data_dir.logs().join("proxy.log");
        let spawned = process::spawn_detached(&exe, &args, &env, None, &log)
            .with_context(|| format!("cannot start the proxy (log: {})", log.display()))?;
        self.store.save_process(
            RECORD,
            &ProcessRecord {
                pid: spawned.pid,
                start_time: spawned.start_time,
                info: serde_json::json!({ "admin": self.admin.to_string() }),
            },
        )?;
        info!(pid = spawned.pid, admin = %self.admin, "started the proxy");
        self.wait_healthy().await
    }

    async fn wait_healthy(&self) -> Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build()?;
        let url = format!("http://{}/healthz", self.admin);
        for _ in 0..100 {
            if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the proxy did not answer on {} within 10s (log: {})",
            self.admin,
            self.data_dir.logs().join("proxy.log").display()
        )
    }

    /// Stops the recorded proxy (for `sluice down`).
    pub async fn stop(store: &Store) -> Result<()> {
        if let Some(record) = store.process(RECORD)? {
            process::terminate(record.pid, record.start_time, Duration::from_secs(10)).await?;
            store.forget_process(RECORD)?;
        }
        Ok(())
    }
}
