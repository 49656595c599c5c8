//! The SQLite store: specs, rollout state, events, process records, with versioned migrations.
