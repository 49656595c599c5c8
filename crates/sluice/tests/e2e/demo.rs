//! `sluice demo` as a user runs it: its exit status and what it tells them at each stage.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::support::SLUICE;

/// The whole demo takes about 75 s in a debug build on an idle machine; other tests share the cores.
const DEMO_LIMIT: Duration = Duration::from_secs(300);

/// Runs `sluice demo` to its end (or `DEMO_LIMIT`), returning its exit status and everything it printed. On
/// timeout the daemon and what it started are stopped through the data directory the demo announced.
async fn run_demo() -> (Option<i32>, String) {
    let mut demo = Command::new(SLUICE)
        .arg("demo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let read = tokio::time::timeout(DEMO_LIMIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push_str(&line);
            printed.push('\n');
        }
    })
    .await;
    if read.is_err() {
        let _ = demo.start_kill();
        let data_dir = printed
            .lines()
            .find_map(|line| line.strip_prefix("Sluice demo: data directory "))
            .map(str::to_owned);
        if let Some(data_dir) = data_dir {
            let _ = Command::new(SLUICE)
                .args(["--data-dir", &data_dir, "down"])
                .output()
                .await;
        }
        panic!("the demo did not finish within {DEMO_LIMIT:?}; it printed:\n{printed}");
    }
    let status = tokio::time::timeout(Duration::from_secs(30), demo.wait())
        .await
        .expect("the demo exits once its output ends")
        .unwrap();
    (status.code(), printed)
}

/// The lines of the release of `revision`: from its heading to the next one.
fn chapter<'a>(printed: &'a str, revision: &str) -> &'a str {
    let heading = format!("\n== {revision}: ");
    let start = printed
        .find(&heading)
        .unwrap_or_else(|| panic!("no chapter for {revision}:\n{printed}"));
    let rest = &printed[start + heading.len()..];
    &rest[..rest.find("\n== ").unwrap_or(rest.len())]
}

/// The shadow report's row for `field`.
fn row<'a>(text: &'a str, field: &str) -> &'a str {
    text.lines()
        .find(|line| line.trim_start().starts_with(&format!("{field} ")))
        .unwrap_or_else(|| panic!("no report row for {field} in:\n{text}"))
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_walks_isolation_and_shadow_before_the_canary_and_catches_each_bad_release_where_it_shows() {
    let (code, printed) = run_demo().await;
    assert_eq!(code, Some(0), "the demo exits 0:\n{printed}");
    assert!(printed.contains("Demo passed"), "{printed}");

    // v2: both stages pass, the shadow stage's only differences are the noise two v1 answers share.
    let v2 = chapter(&printed, "v2");
    let stages = [
        "Isolation checks passed",
        "Shadow stage passed",
        "Advance canary weight 5",
    ];
    let positions: Vec<usize> = stages
        .iter()
        .map(|stage| v2.find(stage).unwrap_or_else(|| panic!("{stage:?} missing:\n{v2}")))
        .collect();
    assert!(positions.is_sorted(), "isolation, then shadow, then the canary:\n{v2}");
    assert!(row(v2, "$.requestId").ends_with("noise, cancelled"), "{v2}");
    assert!(row(v2, "$.servedAt").ends_with("noise, cancelled"), "{v2}");
    assert!(!v2.contains("REAL difference"), "{v2}");
    assert!(line_with(v2, "=> v2").contains("promoted"), "{v2}");

    // v3: its POST failures pass both stages (the shadow stage copies no POST) and are caught by the canary.
    let v3 = chapter(&printed, "v3");
    assert!(
        v3.contains("Isolation checks passed") && v3.contains("Shadow stage passed"),
        "{v3}"
    );
    assert!(v3.contains("never copies a POST"), "the narration says why: {v3}");
    assert!(line_with(v3, "=> v3").contains("rolled back"), "{v3}");
    assert!(
        line_with(v3, "its path:").contains("Shadow → Progressing → RollingBack"),
        "{v3}"
    );

    // v4: the changed price is caught by the shadow stage before a single user request reaches it.
    let v4 = chapter(&printed, "v4");
    assert!(row(v4, "$.price").ends_with("REAL difference"), "{v4}");
    assert!(row(v4, "$.requestId").ends_with("noise, cancelled"), "{v4}");
    assert!(line_with(v4, "ALERT").contains("shadow diff rate too high"), "{v4}");
    let end = line_with(v4, "=> v4");
    assert!(
        end.contains("rolled back") && end.contains("answered 0 user requests"),
        "{v4}"
    );
    assert!(!v4.contains("Progressing"), "v4 never reached the canary:\n{v4}");
}
