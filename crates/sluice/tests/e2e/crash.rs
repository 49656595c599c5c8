//! The daemon killed at every named crash point of a rollout: the restarted daemon carries on to the same
//! outcome, and no user request fails meanwhile.

use std::time::Duration;

use super::support::*;

/// Each point with the hit at which the daemon dies, chosen to land in the middle of a rollout.
const POINTS: &[&str] = &[
    "before-persist:4",
    "after-persist:4",
    "before-start-revision:2",
    "after-start-revision:2",
    "before-set-role:2",
    "after-set-role:2",
    "before-set-route:5",
    "after-set-route:5",
    "before-stop-revision:1",
    "after-stop-revision:1",
];

async fn rollout_survives_a_crash_at(point: &str) {
    let mut sluice = Sluice::start_crashing_at(Some(point)).await;
    assert!(
        sluice
            .apply(&spec(sluice.listen, "v1", 0.0, "[20, 60]"))
            .status
            .success()
    );
    let mut crashed = false;
    // Wait for v1, restarting the daemon (unarmed) if it died at its crash point.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let v1 = loop {
        if sluice.daemon_died() {
            crashed = true;
            sluice.spawn_daemon(None).await;
        }
        if let Some(status) = sluice.status("web").await.filter(|s| phase(s) == "Succeeded") {
            break pids(&status, "v1");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "v1 never became stable:\n{}",
            sluice.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(v1.len(), 2);
    let users = sluice.users(150.0, 60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sluice
            .apply(&spec(sluice.listen, "v2", 0.0, "[20, 60]"))
            .status
            .success()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if sluice.daemon_died() {
            crashed = true;
            sluice.spawn_daemon(None).await;
        }
        let status = sluice.status("web").await;
        if let Some(status) = &status {
            // Done when v2 is stable and v1's processes, stopped after draining, are gone.
            if phase(status) == "Succeeded" && stable(status) == "v2" && !v1.iter().any(|pid| alive(*pid)) {
                break;
            }
            assert!(
                !matches!(phase(status), "RolledBack" | "Failed"),
                "{point}: {status:#}\n{}",
                sluice.daemon_log()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{point}: no promotion: {status:?}\n{}",
            sluice.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last action (stopping v1) may still be finishing: give an armed daemon time to reach its point, then
    // check the restarted daemon agrees the rollout is done.
    let settle = tokio::time::Instant::now() + Duration::from_secs(3);
    while !crashed && tokio::time::Instant::now() < settle {
        crashed = sluice.daemon_died();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(crashed, "the daemon never reached crash point {point}");
    sluice.kill_daemon();
    sluice.spawn_daemon(None).await;
    let status = sluice
        .wait_for("web", Duration::from_secs(5), |s| phase(s) == "Succeeded")
        .await;
    assert_eq!(stable(&status), "v2", "{point}: {status:#}");
    users.stop();
    let total = users.finish().await;
    assert_eq!(
        total.total.transport_errors, 0,
        "{point}: user requests failed: {total:?}"
    );
    assert_eq!(total.total.server_errors, 0, "{point}: {total:?}");
    assert!(total.total.requests > 100);
}

macro_rules! crash_tests {
    ($($name:ident => $index:expr,)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            rollout_survives_a_crash_at(POINTS[$index]).await;
        }
    )*};
}

crash_tests! {
    crash_before_persisting_a_decision => 0,
    crash_after_persisting_a_decision => 1,
    crash_before_starting_a_revision => 2,
    crash_after_starting_a_revision => 3,
    crash_before_setting_a_role => 4,
    crash_after_setting_a_role => 5,
    crash_before_setting_a_route => 6,
    crash_after_setting_a_route => 7,
    crash_before_stopping_a_revision => 8,
    crash_after_stopping_a_revision => 9,
}
