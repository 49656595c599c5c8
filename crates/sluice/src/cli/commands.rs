//! What each subcommand does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use sluice_platform::LocalPlatform;
use sluice_store::Store;

use super::render;
use crate::client::Client;
use crate::datadir::DataDir;
use crate::model::{Applied, ServiceStatus, ServiceSummary};

/// `sluice validate -f FILE`
pub fn validate(file: &Path) -> Result<ExitCode> {
    let text = read(file)?;
    match sluice_spec::parse(&text) {
        Ok(spec) => {
            let revision = spec.revision();
            println!(
                "{}: valid (service {}, revision {} checksum {})",
                file.display(),
                spec.metadata.name,
                revision.name,
                revision.checksum
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{}: {} error(s)", file.display(), errors.errors.len());
            for error in &errors.errors {
                eprintln!("  {}: {}", error.path, error.message);
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `sluice schema`
pub fn schema() -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&sluice_spec::json_schema())?);
    Ok(ExitCode::SUCCESS)
}

fn read(file: &Path) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// `sluice apply -f FILE [--wait]`
pub async fn apply(data_dir: &DataDir, file: &Path, wait: bool, timeout: Duration) -> Result<ExitCode> {
    let text = read(file)?;
    if let Err(errors) = sluice_spec::parse(&text) {
        eprintln!(
            "{}: {} error(s); nothing was applied",
            file.display(),
            errors.errors.len()
        );
        for error in &errors.errors {
            eprintln!("  {}: {}", error.path, error.message);
        }
        return Ok(ExitCode::FAILURE);
    }
    let client = Client::for_data_dir(data_dir)?;
    let applied: Applied = client.call(Method::POST, "/v1/services", Some(text)).await?;
    if applied.new_revision {
        println!("{}: revision {} applied", applied.service, applied.revision.name);
    } else {
        println!("{}: revision {} unchanged", applied.service, applied.revision.name);
    }
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    watch(&client, &applied.service, Some(&applied.revision), timeout).await
}

/// Follows a rollout until it ends, printing new events; the exit code tells the outcome.
async fn watch(
    client: &Client,
    name: &str,
    revision: Option<&sluice_spec::RevisionRef>,
    timeout: Duration,
) -> Result<ExitCode> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = 0;
    loop {
        let status: ServiceStatus = client.call(Method::GET, &format!("/v1/services/{name}"), None).await?;
        for event in status.events.iter().filter(|e| e.id > seen).collect::<Vec<_>>() {
            println!("{}", render::event_line(event));
            seen = event.id;
        }
        let target = revision.cloned().unwrap_or_else(|| status.desired.clone());
        if let Some(outcome) = status.outcome_for(&target) {
            println!("{name}: {} — {}", render::outcome_word(outcome), status.display_phase);
            return Ok(ExitCode::from(outcome.exit_code()));
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "{name}: still {} after {}s; giving up waiting",
                status.display_phase,
                timeout.as_secs()
            );
            return Ok(ExitCode::from(4));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `sluice get`
pub async fn get(data_dir: &DataDir) -> Result<ExitCode> {
    let client = Client::for_data_dir(data_dir)?;
    let services: Vec<ServiceSummary> = client.call(Method::GET, "/v1/services", None).await?;
    print!("{}", render::service_table(&services));
    Ok(ExitCode::SUCCESS)
}

/// `sluice status NAME [--watch]`
pub async fn status(data_dir: &DataDir, name: &str, watch_it: bool) -> Result<ExitCode> {
    let client = Client::for_data_dir(data_dir)?;
    let status: ServiceStatus = client.call(Method::GET, &format!("/v1/services/{name}"), None).await?;
    print!("{}", render::status(&status));
    if !watch_it {
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    watch(&client, name, None, Duration::from_secs(24 * 3600)).await
}

/// `sluice events NAME`
pub async fn events(data_dir: &DataDir, name: &str) -> Result<ExitCode> {
    let client = Client::for_data_dir(data_dir)?;
    let events: Vec<sluice_store::StoredEvent> = client
        .call(Method::GET, &format!("/v1/services/{name}/events"), None)
        .await?;
    for event in &events {
        println!("{}", render::event_line(event));
    }
    Ok(ExitCode::SUCCESS)
}

/// `sluice pause|resume|promote|abort|approve|retry|undo NAME`
pub async fn command(data_dir: &DataDir, name: &str, command: &str) -> Result<ExitCode> {
    let client = Client::for_data_dir(data_dir)?;
    let path = format!("/v1/services/{name}/{command}");
    client.call::<serde_json::Value>(Method::POST, &path, None).await?;
    println!("{name}: {command} requested");
    Ok(ExitCode::SUCCESS)
}

/// `sluice down`: stops the daemon, the proxy and every revision's processes recorded for the data directory.
pub async fn down(data_dir: &DataDir) -> Result<ExitCode> {
    for line in stop_everything(data_dir).await? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What `sluice down` does, without printing (the demo cleans up with it).
pub async fn down_quietly(data_dir: &DataDir) -> Result<()> {
    stop_everything(data_dir).await.map(drop)
}

async fn stop_everything(data_dir: &DataDir) -> Result<Vec<String>> {
    let grace = Duration::from_secs(10);
    let mut done = Vec::new();
    if let Ok(info) = data_dir.daemon_info() {
        sluice_platform::process::terminate(info.pid, info.start_time, grace).await?;
        let _ = std::fs::remove_file(data_dir.daemon_file());
        done.push(format!("stopped the daemon (pid {})", info.pid));
    }
    if !data_dir.database().exists() {
        done.push(format!("nothing else to stop in {}", data_dir.root().display()));
        return Ok(done);
    }
    let store = std::sync::Arc::new(Store::open(&data_dir.database())?);
    crate::daemon::ProxySupervisor::stop(&store).await?;
    done.push("stopped the proxy".into());
    let platform = LocalPlatform::new(data_dir.logs(), store.clone()).await?;
    platform.stop_all(grace).await?;
    done.push("stopped every revision's processes".into());
    Ok(done)
}

/// `sluice proxy`
pub async fn proxy(
    admin: SocketAddr,
    state_file: Option<PathBuf>,
    config: Option<PathBuf>,
    workers: Option<std::num::NonZeroUsize>,
) -> Result<ExitCode> {
    let initial = match config {
        Some(path) => Some(sluice_proxy::load_routes_file(&path)?),
        None => None,
    };
    let config = sluice_proxy::ProxyConfig {
        admin,
        state_file,
        initial,
        workers,
    };
    sluice_proxy::run(config, std::future::pending())
        .await
        .context("the proxy failed")?;
    Ok(ExitCode::SUCCESS)
}

/// `sluice demo-app`
pub async fn demo_app(config: sluice_demo::app::AppConfig) -> Result<ExitCode> {
    sluice_demo::app::serve(config, shutdown())
        .await
        .context("the demo app failed")?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown() {
    let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// The suite kept in the repository, used when no scenarios file is given.
const DEFAULT_SCENARIOS: &str = include_str!("../../../bench/scenarios.json");

/// `sluice bench analysis`
pub fn bench_analysis(
    scenarios: Option<&Path>,
    json: Option<&Path>,
    runs_good: u32,
    runs_bad: u32,
) -> Result<ExitCode> {
    use sluice_bench::suite::{Runs, render_table, run_suite};
    let file = match scenarios {
        Some(path) => sluice_bench::ScenarioFile::load(path)?,
        None => sluice_bench::ScenarioFile::from_json(DEFAULT_SCENARIOS)?,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = tokio::time::Instant::now();
    let summaries = run_suite(
        &file,
        Runs {
            good: runs_good,
            bad: runs_bad,
        },
        threads,
    )?;
    print!("{}", render_table(&summaries));
    println!(
        "\n{} scenarios x 4 algorithms in {:.0}s",
        file.scenarios.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&summaries)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
