//! The plain data the platform and its callers exchange.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::PlatformError;

/// The placeholder replaced by an instance's port in commands and environment values.
const PORT_PLACEHOLDER: &str = "{port}";

/// Where a revision's processes come from: a plain description so this crate does not depend on the spec crate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProcessTemplate {
    /// Program and arguments; `{port}` in any element becomes the instance's port.
    pub command: Vec<String>,
    /// Added to the daemon's environment; `{port}` in a value becomes the instance's port.
    pub env: BTreeMap<String, String>,
    /// Directory the instances run in; the daemon's own when absent.
    pub working_dir: Option<PathBuf>,
    /// How many instances the revision runs.
    pub instances: u32,
    /// Path probed with `GET http://127.0.0.1:<port><readiness_path>`; a 2xx answer means ready.
    pub readiness_path: String,
    /// How long one readiness probe may take before it counts as not ready.
    pub readiness_timeout: Duration,
}

impl ProcessTemplate {
    /// Rejects templates no instance could be started from.
    pub(crate) fn check(&self, key: &RevisionKey) -> Result<(), PlatformError> {
        let problem = if self.command.is_empty() {
            "the command is empty"
        } else if self.instances == 0 {
            "a revision needs at least one instance"
        } else if !self.readiness_path.starts_with('/') {
            "the readiness path must start with '/'"
        } else {
            return Ok(());
        };
        Err(PlatformError::InvalidTemplate {
            key: key.clone(),
            problem,
        })
    }

    /// The command line of the instance listening on `port`: the program, then its arguments.
    pub(crate) fn command_for(&self, port: u16) -> (String, Vec<String>) {
        let mut words = self.command.iter().map(|word| with_port(word, port));
        let program = words.next().unwrap_or_default();
        (program, words.collect())
    }

    /// The extra environment of the instance listening on `port`.
    pub(crate) fn env_for(&self, port: u16) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(name, value)| (name.clone(), with_port(value, port)))
            .collect()
    }
}

fn with_port(text: &str, port: u16) -> String {
    text.replace(PORT_PLACEHOLDER, &port.to_string())
}

/// What happens when an instance's process exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Stable revision: a crashed instance is restarted on the same port, with backoff.
    Always,
    /// Candidate: a crash is reported as [`RevisionHealth::Failed`], not hidden by a restart.
    Never,
}

/// Names one revision of one service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RevisionKey {
    /// The service's name.
    pub service: String,
    /// The revision's name within the service.
    pub revision: String,
}

impl RevisionKey {
    /// A key for `revision` of `service`.
    pub fn new(service: impl Into<String>, revision: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            revision: revision.into(),
        }
    }

    /// Both names become directories under the logs directory, so they must not escape it.
    pub(crate) fn check(&self) -> Result<(), PlatformError> {
        check_path_component("service", &self.service)?;
        check_path_component("revision", &self.revision)
    }
}

fn check_path_component(what: &'static str, value: &str) -> Result<(), PlatformError> {
    let unsafe_component = value.is_empty() || value == "." || value == ".." || value.contains(['/', '\0']);
    if unsafe_component {
        return Err(PlatformError::InvalidName {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

impl fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.revision)
    }
}

/// One running instance of a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// Position of the instance within its revision, from 0.
    pub index: u32,
    /// Loopback address the instance listens on.
    pub addr: SocketAddr,
    /// The instance's process, which leads its own process group.
    pub pid: u32,
    /// File receiving the instance's stdout and stderr.
    pub log_path: PathBuf,
}

/// The loopback address of an instance listening on `port`.
pub(crate) fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// What the controller observes about a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevisionHealth {
    /// The platform runs nothing for this revision.
    NotRunning,
    /// Instances run but not all of them answer their readiness probe yet.
    Starting {
        /// Instances answering their readiness probe.
        ready: u32,
        /// Instances the revision should have.
        of: u32,
    },
    /// Every instance answers its readiness probe with 2xx.
    Ready,
    /// A stable revision is restarting an instance.
    Degraded {
        /// Instances answering their readiness probe.
        ready: u32,
        /// Instances the revision should have.
        of: u32,
        /// Restarts since this platform began supervising the revision.
        restarts: u32,
    },
    /// A candidate's instance exited; reported until the revision is stopped.
    Failed {
        /// Which instance exited, how, and where its log is.
        reason: String,
    },
}

/// What the ledger keeps about one started process so a restarted daemon can adopt it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct InstanceRecord {
    /// Position of the instance within its revision.
    pub index: u32,
    /// The instance's process.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: tells the recorded process from a later one reusing its pid.
    pub start_time: u64,
    /// Loopback port the instance listens on; a restart reuses it.
    pub port: u16,
    /// File receiving the instance's stdout and stderr.
    pub log_path: PathBuf,
    /// How to start the instance again.
    pub template: ProcessTemplate,
    /// The revision's restart policy when the record was written.
    pub policy: RestartPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(command: &[&str]) -> ProcessTemplate {
        ProcessTemplate {
            command: command.iter().map(|word| word.to_string()).collect(),
            env: BTreeMap::from([("PORT".to_owned(), "{port}".to_owned())]),
            working_dir: None,
            instances: 1,
            readiness_path: "/".to_owned(),
            readiness_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn port_placeholder_is_replaced_in_arguments_and_environment() {
        let template = template(&["server", "--listen=127.0.0.1:{port}", "-v"]);

        let (program, args) = template.command_for(8123);

        assert_eq!(program, "server");
        assert_eq!(args, ["--listen=127.0.0.1:8123", "-v"]);
        assert_eq!(template.env_for(8123)["PORT"], "8123");
    }

    #[test]
    fn templates_that_cannot_start_an_instance_are_rejected() {
        let key = RevisionKey::new("web", "v2");
        let mut no_instances = template(&["server"]);
        no_instances.instances = 0;
        let mut relative_probe = template(&["server"]);
        relative_probe.readiness_path = "healthz".to_owned();

        for bad in [template(&[]), no_instances, relative_probe] {
            let error = bad.check(&key).unwrap_err();
            assert!(error.to_string().starts_with("revision web/v2: "), "{error}");
        }
        assert!(template(&["server"]).check(&key).is_ok());
    }

    #[test]
    fn names_that_would_escape_the_logs_directory_are_rejected() {
        for (service, revision) in [("..", "v1"), ("web", "a/b"), ("", "v1"), ("web", ".")] {
            let error = RevisionKey::new(service, revision).check().unwrap_err();
            assert!(
                error.to_string().contains("cannot be used as a directory name"),
                "{error}"
            );
        }
        assert!(RevisionKey::new("web", "v1.2-rc").check().is_ok());
    }

    #[test]
    fn records_survive_a_json_round_trip() {
        let record = InstanceRecord {
            index: 1,
            pid: 4242,
            start_time: 987_654,
            port: 40_000,
            log_path: PathBuf::from("/var/log/sluice/web/v2/1.log"),
            template: template(&["server", "{port}"]),
            policy: RestartPolicy::Never,
        };

        let json = serde_json::to_string(&record).unwrap();

        assert_eq!(serde_json::from_str::<InstanceRecord>(&json).unwrap(), record);
    }
}
