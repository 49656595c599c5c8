//! `sluice demo`: a whole progressive delivery on this machine, with nothing installed but this binary.
//!
//! It starts a daemon on a temporary data directory, deploys the demo service as v1 and sends users' traffic
//! (item reads and some POSTs) through the proxy. Then three releases walk the whole path (isolation checks, the
//! shadow stage, the canary steps): a healthy v2 is promoted; v3, failing 1 in 10 POSTs, passes isolation and
//! shadow (neither sends it a POST) and the canary rolls it back; v4, whose prices changed, is caught by the shadow
//! stage before any user sees it. It prints what happens at each stage, then stops everything it started. The
//! outcome does not depend on chance: the revisions' errors are deterministic.

mod narrate;
mod spec;
mod story;

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use sluice_demo::load::{self, LoadConfig, LoadSnapshot, LoadStats, RequestTemplate};
use sluice_engine::Phase;
use tokio::time::Instant;

use crate::cli::render::event_line;
use crate::client::Client;
use crate::datadir::DataDir;
use crate::model::{Applied, Outcome, ServiceStatus};
use story::{CHAPTERS, Release};

/// The demo's service name.
const SERVICE: &str = "demo";
/// Items the users' requests go round.
const ITEMS: u64 = 40;
/// Longest a release may take before the demo gives up on it.
const RELEASE_LIMIT: Duration = Duration::from_secs(600);

/// Runs the demo; exit status 0 only if every release ended as its chapter says.
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
    let failures: Vec<String> = CHAPTERS
        .iter()
        .zip(&releases)
        .filter_map(|(chapter, release)| release.check(chapter.expected).err())
        .collect();
    if failures.is_empty() && releases.len() == CHAPTERS.len() {
        println!(
            "Demo passed: v2 was promoted; v3 was rolled back by the canary; v4 by the shadow stage, having served no \
             user."
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("Demo FAILED: {}", failures.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

async fn drive(data_dir: &DataDir, exe: &std::path::Path, interval: Duration, rate: f64) -> Result<Vec<Release>> {
    let client = connect(data_dir).await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], sluice_platform::process::free_port()?));
    let started = Instant::now();

    println!("\n== v1: the first revision, serving every user");
    let v1 = follow(&client, &spec::demo(exe, listen, "v1", &[], interval), None).await?;
    if v1.outcome != Outcome::Promoted {
        bail!("v1 did not start");
    }
    println!("\n{}", narrate::intro(rate, interval));
    let users = load::start(LoadConfig {
        target: listen,
        requests: user_requests(),
        rate,
        duration: Duration::from_secs(900),
        max_requests: (rate * 900.0) as u64,
        max_in_flight: 256,
        timeout: Duration::from_secs(5),
    })?;
    let stats = users.stats();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut releases = Vec::new();
    for chapter in &CHAPTERS {
        println!("\n== {}: {}", chapter.revision, chapter.heading);
        println!("   {}", chapter.why);
        let spec = spec::demo(exe, listen, chapter.revision, chapter.app_flags, interval);
        releases.push(follow(&client, &spec, Some(&stats)).await?);
    }
    users.stop();
    let total = users.finish().await;
    print!("{}", narrate::summary(&releases, &total, started.elapsed()));
    Ok(releases)
}

/// Users browse items and order some: every third request is a POST, the others GETs, going round `ITEMS`.
///
/// The period must share no factor with the proxy's weighted round-robin, which hands a candidate every 20th,
/// 10th, 4th or 2nd request on the demo's steps: with a POST every fourth request, the candidate got only POSTs or
/// none at all.
fn user_requests() -> Vec<RequestTemplate> {
    let period = narrate::GETS_PER_POST as u64 + 1;
    (0..ITEMS * period)
        .map(|n| {
            let path = format!("/api/items/{}", n % ITEMS + 1);
            if n % period == period - 1 {
                RequestTemplate::post(path, r#"{"quantity":1}"#).with_header("content-type", "application/json")
            } else {
                RequestTemplate::get(path)
            }
        })
        .collect()
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

/// Applies one revision and follows its rollout to the end, printing events, what users see, and the shadow
/// stage's report when it ends.
async fn follow(client: &Client, spec: &str, users: Option<&Arc<LoadStats>>) -> Result<Release> {
    let applied: Applied = client
        .call(Method::POST, "/v1/services", Some(spec.to_string()))
        .await?;
    let revision = applied.revision.clone();
    let started = Instant::now();
    let mut seen = last_event_id(client).await?;
    let at_start: Option<LoadSnapshot> = users.map(|u| u.snapshot());
    let mut previous = at_start.clone();
    let mut last_line = Instant::now();
    let mut phases: Vec<Phase> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let status = service_status(client).await?;
        if phases.last() != Some(&status.phase) {
            // Before the events: they carry the stage's verdict and what came next, the report is its evidence.
            if phases.last() == Some(&Phase::Shadow) {
                print_shadow_report(&status, &revision.name);
            }
            phases.push(status.phase);
        }
        let since = seen;
        for event in status.events.iter().filter(|e| e.id > since) {
            println!("  {}", event_line(event));
            seen = event.id;
        }
        if let (Some(users), Some(earlier)) = (users, previous.as_ref())
            && last_line.elapsed() >= Duration::from_secs(1)
        {
            println!("  {}", narrate::traffic_line(&status, &users.window(earlier)));
            previous = Some(users.snapshot());
            last_line = Instant::now();
        }
        if let Some(outcome) = status.outcome_for(&revision) {
            let served = match (users, at_start.as_ref()) {
                (Some(users), Some(at_start)) => users
                    .window(at_start)
                    .revisions
                    .into_iter()
                    .find(|r| r.revision == revision.name),
                _ => None,
            };
            let release = Release {
                revision: revision.name,
                outcome,
                phases,
                took: started.elapsed(),
                users_served: served.as_ref().map_or(0, |s| s.requests),
                users_failed: served.as_ref().map_or(0, |s| s.server_errors),
            };
            println!("{}", narrate::release_end(&release));
            return Ok(release);
        }
        if started.elapsed() > RELEASE_LIMIT {
            bail!(
                "{} did not finish its rollout within {}s ({})",
                revision.name,
                RELEASE_LIMIT.as_secs(),
                status.display_phase
            );
        }
    }
}

/// The shadow stage's report, if the daemon kept one for this candidate's stage.
fn print_shadow_report(status: &ServiceStatus, candidate: &str) {
    let stable = status.stable.as_ref().map_or("stable", |r| r.name.as_str());
    match &status.reports.shadow {
        Some(report) => print!("{}", narrate::shadow_report(report, stable, candidate)),
        None => println!("  (no shadow report was kept)"),
    }
}

async fn service_status(client: &Client) -> Result<ServiceStatus> {
    client.call(Method::GET, &format!("/v1/services/{SERVICE}"), None).await
}

async fn last_event_id(client: &Client) -> Result<i64> {
    Ok(service_status(client).await?.events.last().map_or(0, |e| e.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_post_one_request_in_three_and_read_the_rest() {
        let requests = user_requests();
        let posts = requests.iter().filter(|r| r.method == Method::POST).count();
        assert_eq!(posts * (narrate::GETS_PER_POST + 1), requests.len());
        assert!(requests.iter().all(|r| r.path.starts_with("/api/items/")));
    }

    /// Regression: with a POST every fourth request, a candidate given every 20th, 10th, 4th or 2nd request by the
    /// round-robin got no POST at all, and a revision failing POSTs was promoted.
    #[test]
    fn a_candidate_getting_every_nth_request_gets_its_share_of_posts() {
        let requests = user_requests();
        for every in [2, 4, 5, 10, 20] {
            for first in 0..every {
                let picked: Vec<_> = requests.iter().skip(first).step_by(every).collect();
                let posts = picked.iter().filter(|r| r.method == Method::POST).count();
                let share = posts as f64 / picked.len() as f64;
                assert!(
                    (0.15..=0.35).contains(&share),
                    "every {every}th from {first}: {share:.2} POSTs"
                );
            }
        }
    }
}
