//! A rollout judged through PromQL: a real Prometheus scrapes the proxy's admin listener, and the daemon reads
//! the revisions' windows from it instead of from the proxy.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::support::*;

/// A real Prometheus on loopback, scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target: &str) -> Prometheus {
        let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("Prometheus is not installed: `apt-get install prometheus` (Debian package), as .ci/run does");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice-proxy\n    scrape_interval: 1s\n    \
                 scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let prometheus = Prometheus {
            child,
            url: format!("http://{listen}"),
            _dir: dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return prometheus;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not become ready on {listen}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_judged_through_promql_promotes_a_good_version_and_rolls_back_a_bad_one() {
    let (mut sluice, _) = Sluice::serving_v1("[20, 50]").await;
    let proxy = sluice.store().process("proxy").unwrap().unwrap();
    let admin = proxy.info["admin"].as_str().unwrap().to_string();
    let prometheus = Prometheus::start(&admin).await;
    let users = sluice.users(300.0, 90);
    let listen = sluice.listen;
    let through_prometheus = |revision: &str, error_rate: f64| {
        spec_judged(
            listen,
            revision,
            &demo_command(revision, error_rate),
            "[20, 50]",
            "sequential",
        )
        .replace("interval: 1s", "interval: 10s")
        .replace(
            "  analysis:\n",
            &format!(
                "  analysis:\n    provider: {{ type: prometheus, address: \"{}\" }}\n    evaluationInterval: 5s\n",
                prometheus.url
            ),
        )
    };
    assert!(sluice.apply(&through_prometheus("v2", 0.0)).status.success());
    let promoted = sluice
        .wait_for("web", Duration::from_secs(45), |s| {
            phase(s) == "Succeeded" && stable(s) == "v2"
        })
        .await;
    assert!(
        messages(&promoted).iter().any(|m| m.contains("not worse than stable")),
        "{promoted:#}"
    );

    assert!(sluice.apply(&through_prometheus("v3", 0.1)).status.success());
    let status = sluice
        .wait_for("web", Duration::from_secs(30), |s| phase(s) == "RolledBack")
        .await;
    let events = messages(&status).join("\n");
    assert!(events.contains("Halt advancement: errors: candidate"), "{events}");
    users.stop();
    let total = users.finish().await;
    assert_eq!(total.total.transport_errors, 0, "{total:?}");
}
