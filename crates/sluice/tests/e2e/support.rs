//! A daemon on a temporary data directory, driven as a user would: the CLI, the API, traffic through the proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sluice_demo::load::{self, LoadConfig, LoadHandle, RequestTemplate};

pub const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A data directory with a daemon that may be killed and restarted; everything is stopped on drop.
pub struct Sluice {
    pub dir: tempfile::TempDir,
    daemon: Option<Child>,
    pub listen: SocketAddr,
    http: reqwest::Client,
}

impl Sluice {
    /// Starts a daemon on a fresh data directory.
    pub async fn start() -> Sluice {
        Self::start_crashing_at(None).await
    }

    /// Starts a daemon that kills itself at the named crash point.
    pub async fn start_crashing_at(crash: Option<&str>) -> Sluice {
        let dir = tempfile::Builder::new().prefix("sluice-test-").tempdir().unwrap();
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut sluice = Sluice {
            dir,
            daemon: None,
            listen,
            http: reqwest::Client::new(),
        };
        sluice.spawn_daemon(crash).await;
        sluice
    }

    /// A daemon serving the `web` service at revision v1 (healthy), its canary plan stepping through `steps`;
    /// returns v1's status.
    pub async fn serving_v1(steps: &str) -> (Sluice, Value) {
        let mut sluice = Sluice::start().await;
        let applied = sluice.apply(&spec(sluice.listen, "v1", 0.0, steps));
        assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
        let status = sluice
            .wait_for("web", Duration::from_secs(20), |s| phase(s) == "Succeeded")
            .await;
        (sluice, status)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the daemon (again), optionally armed with a crash point, and waits for its API.
    pub async fn spawn_daemon(&mut self, crash: Option<&str>) {
        let _ = std::fs::remove_file(self.data_dir().join("daemon.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir().join("daemon.log"))
            .unwrap();
        let mut command = Command::new(SLUICE);
        command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        match crash {
            Some(point) => command.env("SLUICE_CRASH_AT", point),
            None => command.env_remove("SLUICE_CRASH_AT"),
        };
        self.daemon = Some(command.spawn().unwrap());
        for _ in 0..200 {
            if let Ok(info) = std::fs::read_to_string(self.data_dir().join("daemon.json")) {
                let info: Value = serde_json::from_str(&info).unwrap();
                let api = info["api"].as_str().unwrap().to_string();
                if self.http.get(format!("http://{api}/healthz")).send().await.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon did not start; log:\n{}", self.daemon_log());
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("daemon.log")).unwrap_or_default()
    }

    /// Whether the daemon process has exited (it kills itself at a crash point).
    pub fn daemon_died(&mut self) -> bool {
        self.daemon.as_mut().is_some_and(|d| d.try_wait().unwrap().is_some())
    }

    /// `kill -9` the daemon.
    pub fn kill_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }

    /// Runs the CLI against this data directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(SLUICE)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .output()
            .unwrap()
    }

    /// Writes a spec file and applies it with the CLI.
    pub fn apply(&self, spec: &str) -> Output {
        let file = self.data_dir().join(format!("spec-{}.yaml", rand_suffix()));
        std::fs::write(&file, spec).unwrap();
        self.cli(&["apply", "-f", file.to_str().unwrap()])
    }

    fn api(&self) -> String {
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(self.data_dir().join("daemon.json")).unwrap()).unwrap();
        info["api"].as_str().unwrap().to_string()
    }

    /// The service's status document, or None while the daemon is unreachable.
    pub async fn status(&self, service: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("http://{}/v1/services/{service}", self.api()))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// Polls the status until `done` holds, restarting the daemon if it died; panics after `limit`.
    pub async fn wait_for(&mut self, service: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.daemon_died() {
                self.spawn_daemon(None).await;
            }
            if let Some(status) = self.status(service).await {
                if done(&status) {
                    return status;
                }
                if tokio::time::Instant::now() > deadline {
                    panic!("timed out; status: {status:#}\nlog:\n{}", self.daemon_log());
                }
            } else if tokio::time::Instant::now() > deadline {
                panic!("timed out with the daemon unreachable; log:\n{}", self.daemon_log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Steady user traffic through the proxy, bounded in time and count.
    pub fn users(&self, rate: f64, seconds: u64) -> LoadHandle {
        load::start(LoadConfig {
            target: self.listen,
            requests: vec![RequestTemplate::get("/")],
            rate,
            duration: Duration::from_secs(seconds),
            max_requests: (rate * seconds as f64) as u64,
            max_in_flight: 128,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    /// The store, opened beside the daemon (SQLite in WAL mode allows it).
    pub fn store(&self) -> sluice_store::Store {
        sluice_store::Store::open(&self.data_dir().join("sluice.db")).unwrap()
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        self.kill_daemon();
        let _ = Command::new(SLUICE)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("down")
            .output();
    }
}

pub fn phase(status: &Value) -> &str {
    status["phase"].as_str().unwrap_or("")
}

pub fn stable(status: &Value) -> &str {
    status["stable"]["name"].as_str().unwrap_or("")
}

pub fn candidate(status: &Value) -> &str {
    status["candidate"]["name"].as_str().unwrap_or("")
}

pub fn weight(status: &Value) -> u64 {
    status["weight"].as_u64().unwrap_or(0)
}

/// Messages of the events the status document carries.
pub fn messages(status: &Value) -> Vec<String> {
    status["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str().map(String::from))
        .collect()
}

/// The demo service's spec: a canary stepping through `steps`, one step a second.
pub fn spec(listen: SocketAddr, revision: &str, error_rate: f64, steps: &str) -> String {
    spec_with_command(listen, revision, &demo_command(revision, error_rate), steps)
}

/// The command line of the demo service at `revision`.
pub fn demo_command(revision: &str, error_rate: f64) -> String {
    format!(
        r#"["{SLUICE}", "demo-app", "--listen", "127.0.0.1:{{port}}", "--revision", "{revision}", "--error-rate", "{error_rate}"]"#
    )
}

/// A spec running an arbitrary command, judged by the threshold judge (Flagger's semantics).
pub fn spec_with_command(listen: SocketAddr, revision: &str, command: &str, steps: &str) -> String {
    spec_judged(listen, revision, command, steps, "threshold")
}

/// The demo service's spec judged by `judge`.
pub fn spec_judged(listen: SocketAddr, revision: &str, command: &str, steps: &str, judge: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: {listen}
  revision:
    name: {revision}
    process:
      command: {command}
      instances: 2
      readiness: {{ http: /healthz, timeout: 1s }}
  progressDeadline: 5s
  strategy:
    canary:
      stepWeights: {steps}
      interval: 1s
  analysis:
    judge: {judge}
    threshold: 2
    metrics:
      - name: request-success-rate
        thresholdRange: {{ min: 99 }}
      - name: request-duration
        thresholdRange: {{ max: 500 }}
"#
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Whether a process is alive (not a zombie).
pub fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Pids of the service's running instances of `revision`.
pub fn pids(status: &Value, revision: &str) -> Vec<u64> {
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["revision"] == revision)
        .filter_map(|i| i["pid"].as_u64())
        .collect()
}

// ---- Release path (stages and strategies) ----

impl Sluice {
    /// User traffic through the proxy cycling through `requests` (headers steer match rules), bounded in time and
    /// count.
    pub fn users_sending(&self, requests: Vec<RequestTemplate>, rate: f64, seconds: u64) -> LoadHandle {
        load::start(LoadConfig {
            target: self.listen,
            requests,
            rate,
            duration: Duration::from_secs(seconds),
            max_requests: (rate * seconds as f64) as u64,
            max_in_flight: 128,
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }
}

/// A GET of `/` carrying `headers`, for traffic that must (or must not) match a rule.
pub fn get_with(headers: &[(&str, &str)]) -> RequestTemplate {
    RequestTemplate {
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        ..RequestTemplate::get("/")
    }
}

/// How many of the counted requests `revision` answered (by the `x-revision` header).
pub fn served_by(revisions: &[sluice_demo::load::RevisionLoad], revision: &str) -> u64 {
    revisions
        .iter()
        .filter(|r| r.revision == revision)
        .map(|r| r.requests)
        .sum()
}

/// The command line of the demo service at `revision` with extra flags (`--latency 300ms`, `--error-rate 1`).
pub fn demo_command_with(revision: &str, flags: &[&str]) -> String {
    let mut args = vec![
        SLUICE.to_string(),
        "demo-app".into(),
        "--listen".into(),
        "127.0.0.1:{port}".into(),
        "--revision".into(),
        revision.into(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    serde_json::to_string(&args).unwrap()
}

/// A spec of the `web` service whose strategy and stages are given as YAML (indented under `spec:`), with one
/// instance per revision and the threshold judge on the default checks.
pub fn release_spec(listen: SocketAddr, revision: &str, command: &str, release: &str) -> String {
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: {listen}
  revision:
    name: {revision}
    process:
      command: {command}
      readiness: {{ http: /healthz, timeout: 1s }}
  progressDeadline: 5s
{release}
  analysis:
    judge: threshold
    threshold: 1
    metrics:
      - name: request-success-rate
        thresholdRange: {{ min: 99 }}
"#
    )
}

/// One user sending requests one after another, recording which revision answered each (`error` for a failure),
/// in order. Bounded by `limit` requests and stopped by [`Prober::stop`].
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Prober {
    /// Starts sending GET `/` to `target` with `headers`, pausing `pause` between requests.
    pub fn start(target: SocketAddr, headers: &[(&str, &str)], pause: Duration, limit: usize) -> Prober {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut seen = Vec::new();
            while seen.len() < limit && !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let mut request = client.get(format!("http://{target}/"));
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                let revision = match request.send().await {
                    Ok(response) if response.status().is_success() => response
                        .headers()
                        .get("x-revision")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_string(),
                    _ => "error".to_string(),
                };
                seen.push(revision);
                tokio::time::sleep(pause).await;
            }
            seen
        });
        Prober { stop, task }
    }

    /// Stops sending and returns the revisions that answered, in order.
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// The runs of equal values in order: `[v1, v1, v2]` gives `[("v1", 2), ("v2", 1)]`.
pub fn runs(seen: &[String]) -> Vec<(String, usize)> {
    let mut runs: Vec<(String, usize)> = Vec::new();
    for value in seen {
        match runs.last_mut() {
            Some((last, count)) if last == value => *count += 1,
            _ => runs.push((value.clone(), 1)),
        }
    }
    runs
}
