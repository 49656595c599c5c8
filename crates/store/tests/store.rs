//! The store keeps decisions, events, commands and process records across reopenings.

use jiff::Timestamp;
use sluice_engine::{Action, Command, Event, Rollout, Severity};
use sluice_platform::{InstanceRecord, Ledger, ProcessTemplate, RestartPolicy, RevisionKey};
use sluice_spec::RevisionRef;
use sluice_store::Store;

fn now() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

#[test]
fn a_decision_is_saved_whole_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.db");
    let store = Store::open(&path).unwrap();
    store.queue_command("web", Command::Pause, now()).unwrap();
    store.queue_command("web", Command::Abort, now()).unwrap();
    let commands = store.queued_commands("web").unwrap();
    assert_eq!(
        commands.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        [Command::Pause, Command::Abort]
    );

    let mut rollout = Rollout::new("web");
    rollout.generation = 7;
    let v1 = RevisionRef {
        name: "v1".into(),
        checksum: "abc".into(),
    };
    let actions = vec![
        Action::Record(Event {
            at: now(),
            severity: Severity::Error,
            message: "Canary failed!".into(),
        }),
        Action::StopRevision { revision: v1.clone() },
    ];
    store
        .save_decision(&rollout, &actions, Some(commands[0].0), now())
        .unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), 2);
    let (saved, pending) = store.rollout("web").unwrap().unwrap();
    assert_eq!(saved, rollout);
    assert_eq!(
        pending,
        vec![Action::StopRevision { revision: v1 }],
        "events are not pending actions"
    );
    let events = store.recent_events("web", 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].severity, events[0].message.as_str()),
        (Severity::Error, "Canary failed!")
    );
    let left: Vec<_> = store
        .queued_commands("web")
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    assert_eq!(left, [Command::Abort], "only the consumed command is gone");

    store.clear_pending("web", 6).unwrap();
    assert_eq!(
        store.rollout("web").unwrap().unwrap().1.len(),
        1,
        "an older generation clears nothing"
    );
    store.clear_pending("web", 7).unwrap();
    assert!(store.rollout("web").unwrap().unwrap().1.is_empty());
}

#[test]
fn recent_events_are_the_last_ones_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sluice.db")).unwrap();
    for i in 0..30 {
        store
            .record_event("web", now(), Severity::Info, &format!("event {i}"))
            .unwrap();
        store.record_event("other", now(), Severity::Info, "noise").unwrap();
    }
    let recent: Vec<_> = store
        .recent_events("web", 3)
        .unwrap()
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(recent, ["event 27", "event 28", "event 29"]);
}

#[test]
fn the_ledger_records_and_forgets_instances() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sluice.db")).unwrap();
    let key = RevisionKey {
        service: "web".into(),
        revision: "v1".into(),
    };
    let record = InstanceRecord {
        index: 0,
        pid: 4242,
        port: 8081,
        start_time: 99,
        log_path: dir.path().join("0.log"),
        template: ProcessTemplate {
            command: vec!["./app".into(), "{port}".into()],
            env: Default::default(),
            working_dir: None,
            instances: 1,
            readiness_path: "/".into(),
            readiness_timeout: std::time::Duration::from_secs(1),
        },
        policy: RestartPolicy::Always,
    };
    store.record(&key, &record).unwrap();
    assert_eq!(store.load().unwrap(), vec![(key.clone(), record)]);
    store.forget(&key, 0).unwrap();
    assert!(store.load().unwrap().is_empty());
}

#[test]
fn a_database_from_a_newer_sluice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sluice.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = Store::open(&path).err().unwrap();
    assert!(error.to_string().contains("newer than this Sluice"), "{error}");
}

#[test]
fn the_latest_report_of_each_kind_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sluice.db")).unwrap();
    let now = Timestamp::UNIX_EPOCH;
    store
        .save_report("web", "shadow", &serde_json::json!({"compared": 1}), now)
        .unwrap();
    store
        .save_report("web", "shadow", &serde_json::json!({"compared": 2}), now)
        .unwrap();
    store
        .save_report("web", "isolation", &serde_json::json!({"passed": true}), now)
        .unwrap();
    let reports = store.reports("web").unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports["shadow"]["compared"], 2);
    assert!(store.reports("other").unwrap().is_empty());
}
