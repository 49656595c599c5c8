//! Schema migrations, applied in order; `PRAGMA user_version` is the number applied.

/// Each entry moves the schema from version `i` to `i + 1`. Append only: never edit a released migration.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE specs (
        service     TEXT PRIMARY KEY,
        yaml        TEXT NOT NULL,
        spec_json   TEXT NOT NULL,
        revision    TEXT NOT NULL,
        checksum    TEXT NOT NULL,
        applied_at  TEXT NOT NULL
     );
     CREATE TABLE revisions (
        service     TEXT NOT NULL,
        name        TEXT NOT NULL,
        checksum    TEXT NOT NULL,
        spec_json   TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        PRIMARY KEY (service, name, checksum)
     );
     CREATE TABLE rollouts (
        service     TEXT PRIMARY KEY,
        state_json  TEXT NOT NULL,
        pending_json TEXT NOT NULL,
        generation  INTEGER NOT NULL,
        updated_at  TEXT NOT NULL
     );
     CREATE TABLE events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        service     TEXT NOT NULL,
        at          TEXT NOT NULL,
        severity    TEXT NOT NULL,
        message     TEXT NOT NULL
     );
     CREATE INDEX events_by_service ON events (service, id);
     CREATE TABLE commands (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        service     TEXT NOT NULL,
        command     TEXT NOT NULL,
        queued_at   TEXT NOT NULL
     );
     CREATE TABLE instances (
        service     TEXT NOT NULL,
        revision    TEXT NOT NULL,
        idx         INTEGER NOT NULL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (service, revision, idx)
     );
     CREATE TABLE processes (
        name        TEXT PRIMARY KEY,
        pid         INTEGER NOT NULL,
        start_time  INTEGER NOT NULL,
        info_json   TEXT NOT NULL
     );",
    // 2: the release path's reports (isolation checks, shadow diffs), latest per kind.
    "CREATE TABLE reports (
        service     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        report_json TEXT NOT NULL,
        at          TEXT NOT NULL,
        PRIMARY KEY (service, kind)
     );",
];
