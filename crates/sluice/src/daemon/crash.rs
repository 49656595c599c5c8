//! Named crash points, so tests can kill the daemon at every boundary of a decision and check that the restarted
//! daemon carries on correctly.
//!
//! `SLUICE_CRASH_AT=after-persist` kills the daemon (SIGKILL, as `kill -9` would) the first time it reaches that
//! point; `SLUICE_CRASH_AT=after-persist:3` the third time. Points: `before-persist` and `after-persist` around
//! saving a decision, and `before-ACTION` / `after-ACTION` around each kind of action (`start-revision`,
//! `set-role`, `set-route`, `stop-revision`).

use std::collections::HashMap;
use std::sync::Mutex;

/// The crash point this daemon was asked to die at, if any.
pub struct CrashPoints {
    target: Option<(String, u32)>,
    hits: Mutex<HashMap<String, u32>>,
}

impl CrashPoints {
    /// Reads `SLUICE_CRASH_AT`.
    pub fn from_env() -> Self {
        let target = std::env::var("SLUICE_CRASH_AT").ok().and_then(|spec| {
            let (name, nth) = match spec.split_once(':') {
                Some((name, nth)) => (name.to_string(), nth.parse().ok()?),
                None => (spec, 1),
            };
            Some((name, nth))
        });
        CrashPoints {
            target,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Marks that the daemon reached `point`; dies here if this is the requested crash.
    pub fn reached(&self, point: &str) {
        let Some((name, nth)) = &self.target else { return };
        if name != point {
            return;
        }
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        let count = hits.entry(point.to_string()).or_default();
        *count += 1;
        if *count == *nth {
            eprintln!("sluice: crash point {point} reached (hit {nth}): killing the daemon");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    }
}
