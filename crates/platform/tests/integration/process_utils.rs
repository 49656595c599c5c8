//! The process utilities the daemon reuses for its proxy.

use std::time::Duration;

use nix::unistd::{Pid, getpgid};
use sluice_platform::process::{self, Exit, ProcessState};
use tokio::time::Instant;

use crate::harness::{Harness, wait_until};

#[tokio::test]
async fn a_detached_process_leads_its_own_group_and_reads_nothing() {
    let h = Harness::new().await;

    let spawned = h.spawn("exec sleep 30");

    let pid = Pid::from_raw(spawned.pid as i32);
    assert_eq!(getpgid(Some(pid)).unwrap(), pid);
    let stdin = std::fs::read_link(format!("/proc/{}/fd/0", spawned.pid)).unwrap();
    assert_eq!(stdin, std::path::Path::new("/dev/null"));
    assert!(process::is_alive(spawned.pid, spawned.start_time));
    assert!(!process::is_alive(spawned.pid, spawned.start_time + 1));
}

#[tokio::test]
async fn an_exited_child_is_not_alive_before_it_is_reaped_and_observe_reaps_it() {
    let h = Harness::new().await;
    let spawned = h.spawn("exit 7");
    let zombie =
        || std::fs::read_to_string(format!("/proc/{}/stat", spawned.pid)).is_ok_and(|stat| stat.contains(") Z "));
    wait_until(zombie).await;

    assert!(!process::is_alive(spawned.pid, spawned.start_time));
    assert_eq!(
        process::observe(spawned.pid, spawned.start_time),
        ProcessState::Exited(Exit::Code(7))
    );
    assert!(!std::path::Path::new(&format!("/proc/{}", spawned.pid)).exists());
}

#[tokio::test]
async fn terminate_ends_the_whole_group_and_is_ok_when_it_is_gone() {
    let h = Harness::new().await;
    let spawned = h.spawn("sleep 30 & sleep 30 & wait");
    wait_until(|| live_group_members(spawned.pid).len() == 3).await;
    let started = Instant::now();

    process::terminate(spawned.pid, spawned.start_time, Duration::from_secs(5))
        .await
        .unwrap();

    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(live_group_members(spawned.pid), Vec::<u32>::new());
    process::terminate(spawned.pid, spawned.start_time, Duration::from_secs(5))
        .await
        .unwrap();
}

/// Processes of the group that have not exited (zombies excluded: reaping them is up to init).
fn live_group_members(group: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
            let member = fields.get(2)? == &group.to_string().as_str() && fields.first()? != &"Z";
            member.then_some(pid)
        })
        .collect()
}
