//! The daemon (`sluice serve`): the controller loops, the API, and the supervision of the proxy process.
//!
//! The daemon owns no user traffic: the proxy and the revisions' processes run in their own process groups and
//! keep serving on the last route table while it is down. On start it adopts what the store says is running.

mod api;
mod controller;
mod crash;
mod proxy;
mod release;
mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sluice_metrics::{BuiltinSource, MetricSource};
use sluice_platform::LocalPlatform;
use sluice_router::BuiltinRouter;
use sluice_store::Store;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::datadir::{DaemonInfo, DataDir, write_private};
pub use proxy::ProxySupervisor;

/// The embedded default's controller.
type EmbeddedController = controller::Controller<LocalPlatform, BuiltinRouter, BuiltinSource>;

/// State shared by the API handlers.
pub struct Daemon {
    store: Arc<Store>,
    controller: Arc<EmbeddedController>,
    token: String,
}

/// How often each service's loop decides, and the metric source samples, when nothing happens sooner.
const TICK: Duration = Duration::from_secs(1);

/// Runs the daemon until SIGINT or SIGTERM. Stopping the daemon stops nothing else: `sluice down` does.
pub async fn serve(data_dir: DataDir, listen: SocketAddr) -> Result<()> {
    data_dir.create()?;
    let token = data_dir.token(true)?;
    let store = Arc::new(Store::open(&data_dir.database()).context("cannot open the store")?);
    let platform = Arc::new(
        LocalPlatform::new(data_dir.logs(), store.clone())
            .await
            .context("cannot start the local platform")?,
    );
    let proxy = ProxySupervisor::ensure(data_dir.clone(), store.clone()).await?;
    let router = Arc::new(BuiltinRouter::new(proxy.admin()));
    let metrics = Arc::new(BuiltinSource::new(proxy.admin()));
    let controller = Arc::new(controller::Controller::new(
        store.clone(),
        platform,
        router,
        metrics.clone(),
        TICK,
    )?);

    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let api = listener.local_addr()?;
    let (pid, start_time) = sluice_platform::process::own_identity()?;
    let info = DaemonInfo { pid, start_time, api };
    write_private(&data_dir.daemon_file(), &serde_json::to_string_pretty(&info)?)?;
    info!(%api, data_dir = %data_dir.root().display(), "sluice daemon ready");

    tokio::spawn(sample_metrics(metrics));
    let daemon = Arc::new(Daemon {
        store,
        controller: controller.clone(),
        token,
    });
    controller.start_all()?;
    tokio::spawn(supervise_proxy(proxy, controller.clone()));
    axum::serve(listener, api::routes(daemon))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the API server failed")?;
    // The last events' alerts may still be queued; a dead endpoint costs at most this much.
    controller.drain_notifications(Duration::from_secs(3)).await;
    info!("sluice daemon stopped; the proxy and the services keep running (`sluice down` stops them)");
    Ok(())
}

async fn sample_metrics(metrics: Arc<BuiltinSource>) {
    let mut ticker = tokio::time::interval(TICK / 2);
    loop {
        ticker.tick().await;
        if let Err(error) = metrics.refresh().await {
            warn!("{error}");
        }
    }
}

async fn supervise_proxy(proxy: ProxySupervisor, controller: Arc<EmbeddedController>) {
    let mut ticker = tokio::time::interval(TICK);
    loop {
        ticker.tick().await;
        match proxy.check().await {
            Ok(true) => controller.start_all().unwrap_or_else(|e| warn!("{e:#}")),
            Ok(false) => {}
            Err(error) => warn!("{error:#}"),
        }
    }
}

async fn shutdown_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
