//! The service spec document and the revision it describes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::Analysis;
use crate::duration::Duration;
use crate::hooks::{Alert, Webhook};
use crate::stages::Stages;
use crate::strategy::Strategy;
use crate::syntax::{
    API_VERSION, ENV_KEY_PATTERN, HTTP_PATH_PATTERN, KIND, NAME_MAX_LENGTH, NAME_PATTERN, SOCKET_ADDRESS_FORMAT,
};

/// A Sluice service: how to run it and how to roll out a new revision of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Sluice Service")]
pub struct ServiceSpec {
    /// Always `sluice.dev/v1alpha1`.
    #[schemars(extend("const" = API_VERSION))]
    pub api_version: String,
    /// Always `Service`.
    #[schemars(extend("const" = KIND))]
    pub kind: String,
    /// Identity of the service.
    pub metadata: Metadata,
    /// What to run and how to roll it out.
    pub spec: ServiceBody,
}

/// Identity of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The service's name: lowercase letters, digits and '-', at most 63 characters.
    #[schemars(regex(pattern = NAME_PATTERN), length(max = NAME_MAX_LENGTH))]
    pub name: String,
}

/// What to run and how to roll it out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceBody {
    /// The address users send traffic to, as ip:port.
    #[schemars(extend("format" = SOCKET_ADDRESS_FORMAT, "examples" = ["127.0.0.1:8080"]))]
    pub listen: SocketAddr,
    /// The revision to run; changing anything in it starts a rollout.
    pub revision: RevisionSpec,
    /// How long a rollout may go without progress before it is rolled back.
    #[serde(default = "default_progress_deadline")]
    pub progress_deadline: Duration,
    /// Checks before users see a new revision: in isolation, then on mirrored traffic.
    #[serde(default)]
    pub stages: Stages,
    /// How traffic moves to a new revision.
    pub strategy: Strategy,
    /// How a new revision is judged.
    #[serde(default)]
    pub analysis: Analysis,
    /// Endpoints called at the moments of a rollout (gates, checks, events), Flagger's eight kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
    /// Where the rollout's events are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Alert>,
}

fn default_progress_deadline() -> Duration {
    Duration(std::time::Duration::from_secs(60))
}

/// One revision of a service. Its identity is the checksum of everything here except `name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionSpec {
    /// A name for the revision; generated from the checksum when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = NAME_PATTERN), length(max = NAME_MAX_LENGTH))]
    pub name: Option<String>,
    /// The process that serves the revision.
    pub process: ProcessSpec,
}

/// How to start the instances of a revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessSpec {
    /// Program and arguments; one of them must contain `{port}`, replaced by the port the instance listens on.
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Environment variables added to the instance's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ENV_KEY_PATTERN }))]
    pub env: BTreeMap<String, String>,
    /// Directory the instance starts in; the daemon's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// How many instances to run.
    #[serde(default = "default_instances")]
    #[schemars(range(min = 1, max = 64))]
    pub instances: u32,
    /// When an instance counts as ready to take traffic.
    #[serde(default)]
    pub readiness: Readiness,
}

fn default_instances() -> u32 {
    1
}

/// An HTTP readiness probe against the instance's own port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct Readiness {
    /// Path to GET; any 2xx answer means ready.
    #[schemars(regex(pattern = HTTP_PATH_PATTERN))]
    pub http: String,
    /// How long one probe may take.
    pub timeout: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            http: "/".to_owned(),
            timeout: Duration(std::time::Duration::from_secs(2)),
        }
    }
}
