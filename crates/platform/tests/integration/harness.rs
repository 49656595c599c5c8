//! A platform over a fresh ledger and directories, and a guard that kills what it started.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use sluice_platform::process::{self, ProcessState, SpawnedProcess};
use sluice_platform::{
    InstanceRecord, Ledger, LocalPlatform, MemoryLedger, Platform, ProcessTemplate, RevisionHealth, RevisionKey,
};
use tempfile::TempDir;
use tokio::time::Instant;

/// Upper bound for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Harness {
    platform: Option<LocalPlatform>,
    pub ledger: Arc<MemoryLedger>,
    pub logs: TempDir,
    /// Working directory of the HTTP servers: what they serve.
    pub site: TempDir,
    /// Processes a test started itself, killed with the recorded ones.
    extra: Mutex<Vec<SpawnedProcess>>,
    /// Command-line markers of processes that must not outlive the test.
    markers: Mutex<Vec<String>>,
}

impl Harness {
    pub async fn new() -> Self {
        let site = TempDir::new().unwrap();
        std::fs::write(site.path().join("ready.txt"), "ok").unwrap();
        let ledger = Arc::new(MemoryLedger::new());
        let logs = TempDir::new().unwrap();
        let platform = LocalPlatform::new(logs.path().to_path_buf(), ledger.clone())
            .await
            .unwrap();
        Self {
            platform: Some(platform),
            ledger,
            logs,
            site,
            extra: Mutex::new(Vec::new()),
            markers: Mutex::new(Vec::new()),
        }
    }

    pub fn platform(&self) -> &LocalPlatform {
        self.platform.as_ref().unwrap()
    }

    /// Simulates a daemon killed and started again: the platform goes away without stopping
    /// anything, and a new one starts over the same ledger.
    pub async fn restart_daemon(&mut self) {
        self.platform = None;
        let platform = LocalPlatform::new(self.logs.path().to_path_buf(), self.ledger.clone())
            .await
            .unwrap();
        self.platform = Some(platform);
    }

    /// `instances` python3 HTTP servers serving `site`; ready once `/ready.txt` answers.
    pub fn http_server(&self, instances: u32) -> ProcessTemplate {
        self.template(
            &["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
            instances,
        )
    }

    /// One instance running `script` with `sh -c`, in `site`.
    pub fn shell(&self, script: &str) -> ProcessTemplate {
        self.template(&["sh", "-c", script], 1)
    }

    fn template(&self, command: &[&str], instances: u32) -> ProcessTemplate {
        ProcessTemplate {
            command: command.iter().map(|word| word.to_string()).collect(),
            env: [("PYTHONUNBUFFERED".to_owned(), "1".to_owned())].into(),
            working_dir: Some(self.site.path().to_path_buf()),
            instances,
            readiness_path: "/ready.txt".to_owned(),
            readiness_timeout: Duration::from_secs(1),
        }
    }

    /// Polls health until `wanted` holds, returning every distinct health seen on the way.
    pub async fn wait_for(&self, key: &RevisionKey, wanted: impl Fn(&RevisionHealth) -> bool) -> Vec<RevisionHealth> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen: Vec<RevisionHealth> = Vec::new();
        loop {
            let health = self.platform().health(key).await;
            if seen.last() != Some(&health) {
                seen.push(health.clone());
            }
            if wanted(&health) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{key} never reached the wanted health; seen: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn records(&self) -> Vec<(RevisionKey, InstanceRecord)> {
        self.ledger.load().unwrap()
    }

    /// The only record of `key`.
    pub fn record(&self, key: &RevisionKey) -> InstanceRecord {
        let records: Vec<_> = self
            .records()
            .into_iter()
            .filter(|(known, _)| known == key)
            .map(|(_, record)| record)
            .collect();
        assert_eq!(records.len(), 1, "records of {key}: {records:?}");
        records[0].clone()
    }

    /// Starts `script` with `sh -c` outside the platform; killed when the test ends.
    pub fn spawn(&self, script: &str) -> SpawnedProcess {
        let spawned = process::spawn_detached(
            "sh".as_ref(),
            &["-c".to_owned(), script.to_owned()],
            &Default::default(),
            None,
            &self.logs.path().join("spawned.log"),
        )
        .unwrap();
        self.extra.lock().unwrap().push(spawned);
        spawned
    }

    /// Any process whose command line contains `marker` is killed when the test ends.
    pub fn kill_on_drop_marked(&self, marker: &str) {
        self.markers.lock().unwrap().push(marker.to_owned());
    }

    /// A pid and start time whose process has exited and been reaped.
    pub async fn exited_process(&self) -> SpawnedProcess {
        let spawned = self.spawn("exit 0");
        wait_until(|| {
            matches!(
                process::observe(spawned.pid, spawned.start_time),
                ProcessState::Exited(_)
            )
        })
        .await;
        spawned
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Supervision first, so nothing is restarted behind the kills.
        self.platform = None;
        let recorded = self.ledger.load().unwrap_or_default();
        let extra = self.extra.lock().map(|extra| extra.clone()).unwrap_or_default();
        let processes = recorded
            .iter()
            .map(|(_, record)| SpawnedProcess {
                pid: record.pid,
                start_time: record.start_time,
            })
            .chain(extra);
        for process in processes {
            if process::is_alive(process.pid, process.start_time) {
                let _ = killpg(Pid::from_raw(process.pid as i32), Signal::SIGKILL);
            }
        }
        let markers = self.markers.lock().map(|markers| markers.clone()).unwrap_or_default();
        for marker in markers {
            for pid in pids_with_marker(&marker) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Polls `condition` every 20 ms, failing the test after [`PATIENCE`].
pub async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "condition not met within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `probe` every 20 ms until its answer satisfies `wanted`, failing after [`PATIENCE`].
pub async fn wait_until_async<T, F>(probe: impl Fn() -> F, wanted: impl Fn(&T) -> bool) -> T
where
    F: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = probe().await;
        if wanted(&answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "condition not met within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET http://addr{path}` on loopback: status and body.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Whether any process's command line contains `marker`.
pub fn process_with_marker_exists(marker: &str) -> bool {
    !pids_with_marker(marker).is_empty()
}

fn pids_with_marker(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline).contains(marker).then_some(pid)
        })
        .collect()
}
