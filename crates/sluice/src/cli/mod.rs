//! The command line: argument parsing and dispatch.

mod commands;
pub mod render;

pub use commands::down_quietly;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::datadir::DataDir;

/// Progressive delivery from one binary: deploy a new revision beside the old one, release it step by step
/// while its SLIs are watched, promote it or roll it back.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Args {
    /// The data directory of the daemon to run or talk to.
    #[arg(long, global = true, env = "SLUICE_DATA_DIR", default_value = ".sluice")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

impl Args {
    /// Log verbosity when SLUICE_LOG does not say: the long-running processes log their work, the client
    /// commands only problems.
    pub fn default_log_filter(&self) -> &'static str {
        match self.command {
            Command::Serve { .. } | Command::Proxy { .. } => "info",
            _ => "warn",
        }
    }
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the controller, the API, and the supervision of the proxy.
    Serve {
        /// Where the HTTP API listens (loopback by default; mutating calls need the token in the data directory).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Stop everything started for the data directory: the daemon, the proxy and every revision's processes.
    Down,
    /// Run the built-in proxy (normally started by the daemon; alone with `--config`).
    Proxy {
        /// Where the admin listener (routes, metrics, snapshots) listens.
        #[arg(long, default_value = "127.0.0.1:0")]
        admin: SocketAddr,
        /// The route table file the proxy keeps and restores on restart.
        #[arg(long)]
        state_file: Option<PathBuf>,
        /// A static routes file (YAML) served when no state file holds a table.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Worker threads serving traffic, each with its own runtime and listener socket (default: the
        /// shared runtime).
        #[arg(long)]
        workers: Option<std::num::NonZeroUsize>,
    },
    /// Check a spec and report every error; changes nothing.
    Validate {
        /// The spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Print the JSON Schema of the spec.
    Schema,
    /// Apply a spec: a changed revision starts a rollout.
    Apply {
        /// The spec file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Wait for the rollout to end; exit 0 if promoted, 2 if rolled back or failed, 3 if held.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long (exit 4).
        #[arg(long, value_parser = humantime_duration, default_value = "30m")]
        timeout: Duration,
    },
    /// List services with their phase and weights.
    Get,
    /// Show a service's rollout: phase, weights, checks, recent events.
    Status {
        /// The service.
        name: String,
        /// Refresh until the rollout ends; exit 0 if promoted, 2 if rolled back or failed, 3 if held.
        #[arg(long)]
        watch: bool,
    },
    /// Show a service's event history.
    Events {
        /// The service.
        name: String,
    },
    /// Hold a rollout at its current weight (it rolls back at `holdTimeout` unless resumed).
    Pause { name: String },
    /// End a hold and continue the analysis.
    Resume { name: String },
    /// Skip the rest of the analysis and promote the candidate.
    Promote { name: String },
    /// Roll the candidate back now (after a blue/green switch: switch back while the old revision still runs).
    Abort { name: String },
    /// Open the gate a rollout waits at, as a 2xx answer from its confirm-* webhook would.
    Approve { name: String },
    /// Start the rollout of a rolled-back candidate again.
    Retry { name: String },
    /// Roll a promoted service back to the revision it had before: a new rollout of that revision.
    Undo { name: String },
    /// Run a whole demo: v1, then releases walking isolation, shadow and canary: a healthy v2 promoted, v3 failing
    /// POSTs rolled back by the canary, v4 with changed prices rolled back by the shadow stage.
    Demo {
        /// Time on each canary step (realistic pacing: 30s or more).
        #[arg(long, value_parser = humantime_duration, default_value = "5s")]
        interval: Duration,
        /// Requests per second the demo's users send.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
    },
    /// Benchmarks that compare Sluice with its anchors in one run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The demo service: JSON items at /api/items/{id}, a greeting elsewhere, with a deterministic share of 500s
    /// and added latency.
    DemoApp(sluice_demo::app::AppConfig),
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The analysis benchmark: scenarios with a known truth, run through Sluice's engine in simulated time with
    /// Flagger's and Kayenta's settings (Sluice's threshold and Mann–Whitney judges) and Sluice's defaults.
    Analysis {
        /// A scenarios file (the format of crates/bench/scenarios.json, which is the default).
        #[arg(long)]
        scenarios: Option<PathBuf>,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Runs per good scenario.
        #[arg(long, default_value_t = 1000)]
        runs_good: u32,
        /// Runs per bad scenario.
        #[arg(long, default_value_t = 500)]
        runs_bad: u32,
    },
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    let span: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("expected a duration like 30s or 1m30s, got {text:?}: {e}"))?;
    Duration::try_from(span).map_err(|_| format!("expected a positive duration, got {text:?}"))
}

/// Runs the command and returns the process's exit code.
pub async fn run(args: Args) -> Result<ExitCode> {
    let data_dir = DataDir::new(&args.data_dir);
    match args.command {
        Command::Serve { listen } => crate::daemon::serve(data_dir, listen).await.map(|()| ExitCode::SUCCESS),
        Command::Down => commands::down(&data_dir).await,
        Command::Proxy {
            admin,
            state_file,
            config,
            workers,
        } => commands::proxy(admin, state_file, config, workers).await,
        Command::Validate { file } => commands::validate(&file),
        Command::Schema => commands::schema(),
        Command::Apply { file, wait, timeout } => commands::apply(&data_dir, &file, wait, timeout).await,
        Command::Get => commands::get(&data_dir).await,
        Command::Status { name, watch } => commands::status(&data_dir, &name, watch).await,
        Command::Events { name } => commands::events(&data_dir, &name).await,
        Command::Pause { name } => commands::command(&data_dir, &name, "pause").await,
        Command::Resume { name } => commands::command(&data_dir, &name, "resume").await,
        Command::Promote { name } => commands::command(&data_dir, &name, "promote").await,
        Command::Abort { name } => commands::command(&data_dir, &name, "abort").await,
        Command::Approve { name } => commands::command(&data_dir, &name, "approve").await,
        Command::Retry { name } => commands::command(&data_dir, &name, "retry").await,
        Command::Undo { name } => commands::command(&data_dir, &name, "undo").await,
        Command::Demo { interval, rate } => crate::demo::run(interval, rate).await,
        Command::DemoApp(app) => commands::demo_app(app).await,
        Command::Bench(BenchCommand::Analysis {
            scenarios,
            json,
            runs_good,
            runs_bad,
        }) => commands::bench_analysis(scenarios.as_deref(), json.as_deref(), runs_good, runs_bad),
    }
}
