//! `sluice demo`: a whole progressive delivery on this machine, with nothing installed but this binary.
//!
//! It starts a daemon on a temporary data directory, deploys the demo service as v1, sends users' traffic through
//! the proxy, releases a healthy v2 (promoted) and a v3 that fails 5% of its requests (rolled back), showing the
//! phase, the weights and what users see of each revision, then stops everything it started. The outcome does
//! not depend on chance: v3's errors are deterministic.

mod spec;

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use sluice_demo::load::{self, LoadConfig, LoadSnapshot, RequestTemplate};
use tokio::time::Instant;

use crate::cli::render::{event_line, outcome_word};
use crate::client::Client;
use crate::datadir::DataDir;
use crate::model::{Applied, Outcome, ServiceStatus};

/// The demo's service name.
const SERVICE: &str = "demo";

/// One release of the demo and how it ended.
struct Release {
    revision: String,
    outcome: Outcome,
    took: Duration,
}

/// Runs the demo; exit status 0 only if v2 was promoted and v3 rolled back.
pub async fn run(interval: Duration, rate: f64) -> Result<ExitCode> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-demo-")
        .tempdir()
        .context("cannot create a temporary data directory")?;
    let data_dir = DataDir::new(dir.path());
    data_dir.create()?;
    println!("Sluice demo: data directory {}", data_dir.root().display());
    let exe = std::env::current_exe().context("cannot find the sluice executable")?;
    let log = std::fs::File::create(data_dir.logs().join("daemon.log"))?;
    let mut daemon = tokio::process::Command::new(&exe)
        .arg("--data-dir")
        .arg(data_dir.root())
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the daemon")?;
    let outcome = drive(&data_dir, &exe, interval, rate).await;
    println!("\nStopping everything the demo started…");
    let _ = daemon.start_kill();
    let _ = daemon.wait().await;
    crate::cli::down_quietly(&data_dir).await?;
    let releases = match outcome {
        Ok(releases) => releases,
        Err(error) => {
            let _ = dir.keep();
            return Err(error.context(format!(
                "the demo failed; its logs are in {}",
                data_dir.logs().display()
            )));
        }
    };
    let promoted = releases
        .iter()
        .any(|r| r.revision == "v2" && r.outcome == Outcome::Promoted);
    let rolled_back = releases
        .iter()
        .any(|r| r.revision == "v3" && r.outcome == Outcome::RolledBack);
    if promoted && rolled_back {
        println!("Demo passed: v2 was promoted and v3 rolled back.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Demo FAILED: expected v2 promoted and v3 rolled back.");
        Ok(ExitCode::FAILURE)
    }
}

async fn drive(data_dir: &DataDir, exe: &std::path::Path, interval: Duration, rate: f64) -> Result<Vec<Release>> {
    let client = connect(data_dir).await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], sluice_platform::process::free_port()?));
    let started = Instant::now();

    println!("\n== v1: the first revision, serving every user");
    let v1 = release(&client, &spec::demo(exe, listen, "v1", 0.0, interval), None).await?;
    if v1.outcome != Outcome::Promoted {
        bail!("v1 did not start");
    }
    let users = load::start(LoadConfig {
        target: listen,
        requests: vec![RequestTemplate::get("/")],
        rate,
        duration: Duration::from_secs(900),
        max_requests: (rate * 900.0) as u64,
        max_in_flight: 256,
        timeout: Duration::from_secs(5),
    })?;
    let stats = users.stats();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut releases = Vec::new();
    println!("\n== v2: a healthy release — expect it promoted step by step");
    releases.push(release(&client, &spec::demo(exe, listen, "v2", 0.0, interval), Some(&stats)).await?);
    println!("\n== v3: fails 5% of its requests — expect it rolled back");
    releases.push(release(&client, &spec::demo(exe, listen, "v3", 0.05, interval), Some(&stats)).await?);
    users.stop();
    let total = users.finish().await;
    summary(&releases, &total, started.elapsed());
    Ok(releases)
}

async fn connect(data_dir: &DataDir) -> Result<Client> {
    for _ in 0..100 {
        if let Ok(client) = Client::for_data_dir(data_dir)
            && client
                .call::<Vec<serde_json::Value>>(Method::GET, "/v1/services", None)
                .await
                .is_ok()
        {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the daemon did not come up within 10s (log: {})",
        data_dir.logs().join("daemon.log").display()
    )
}

/// Applies one revision and follows its rollout to the end, printing events and what users see.
async fn release(client: &Client, spec: &str, users: Option<&std::sync::Arc<load::LoadStats>>) -> Result<Release> {
    let applied: Applied = client
        .call(Method::POST, "/v1/services", Some(spec.to_string()))
        .await?;
    let revision = applied.revision.clone();
    let started = Instant::now();
    let mut seen = last_event_id(client).await?;
    let mut previous: Option<LoadSnapshot> = users.map(|u| u.snapshot());
    let mut last_line = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let status: ServiceStatus = client
            .call(Method::GET, &format!("/v1/services/{SERVICE}"), None)
            .await?;
        for event in status.events.iter().filter(|e| e.id > seen).collect::<Vec<_>>() {
            println!("  {}", event_line(event));
            seen = event.id;
        }
        if let (Some(users), Some(earlier)) = (users, previous.as_ref())
            && last_line.elapsed() >= Duration::from_secs(1)
        {
            println!("  {}", traffic_line(&status, &users.window(earlier)));
            previous = Some(users.snapshot());
            last_line = Instant::now();
        }
        if let Some(outcome) = status.outcome_for(&revision) {
            let took = started.elapsed();
            println!(
                "  => {} {} after {:.0}s",
                revision.name,
                outcome_word(outcome),
                took.as_secs_f64()
            );
            return Ok(Release {
                revision: revision.name,
                outcome,
                took,
            });
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "{} did not finish its rollout within 10 minutes ({})",
                revision.name,
                status.display_phase
            );
        }
    }
}

async fn last_event_id(client: &Client) -> Result<i64> {
    let status: ServiceStatus = client
        .call(Method::GET, &format!("/v1/services/{SERVICE}"), None)
        .await?;
    Ok(status.events.last().map_or(0, |e| e.id))
}

fn traffic_line(status: &ServiceStatus, window: &load::LoadWindow) -> String {
    let stable = status.stable.as_ref().map_or("-", |r| r.name.as_str());
    let mut line = format!(
        "{:<28} weights {stable} {}%",
        status.display_phase,
        100 - u32::from(status.weight)
    );
    if let Some(candidate) = &status.candidate {
        line.push_str(&format!(" / {} {}%", candidate.name, status.weight));
    }
    line.push_str("  |");
    for revision in &window.revisions {
        let success = revision
            .success_ratio()
            .map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
        line.push_str(&format!(
            "  {}: {:>4.0} req/s {success} ok p99 {:.1}ms",
            revision.revision,
            revision.request_rate(window.span),
            revision.p99.as_secs_f64() * 1000.0
        ));
    }
    line
}

fn summary(releases: &[Release], total: &LoadSnapshot, elapsed: Duration) {
    println!("\n== Summary ({:.0}s)", elapsed.as_secs_f64());
    println!("  {:<8} {:<14} {:>8}", "release", "outcome", "took");
    for release in releases {
        println!(
            "  {:<8} {:<14} {:>7.0}s",
            release.revision,
            outcome_word(release.outcome),
            release.took.as_secs_f64()
        );
    }
    println!("  users sent {} requests through the proxy:", total.sent);
    for revision in &total.revisions {
        println!(
            "    {:<4} answered {:>6}, of which {:>4} failed (5xx) and {:>3} never answered",
            revision.revision, revision.requests, revision.server_errors, revision.transport_errors
        );
    }
    if total.dropped > 0 {
        println!("  {} requests were not sent: too many in flight", total.dropped);
    }
}
