//! How traffic moves from the stable revision to a new one.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::stages::Checks;
use crate::syntax::SOCKET_ADDRESS_FORMAT;

/// How traffic moves to a new revision. Exactly one strategy is set, written as a map with one key
/// (`canary: {...}`, `blueGreen: {...}` or `abTest: {...}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Strategy {
    /// Shift traffic step by step while the new revision is analysed.
    Canary(Canary),
    /// Run the candidate beside stable on a preview address, then switch all traffic at once.
    BlueGreen(BlueGreen),
    /// Send only requests matching rules to the candidate, for a number of iterations.
    AbTest(AbTest),
}

impl Strategy {
    /// The canary settings, if this is a canary strategy.
    pub fn canary(&self) -> Option<&Canary> {
        match self {
            Self::Canary(canary) => Some(canary),
            _ => None,
        }
    }

    /// The strategy's name as the spec writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Canary(_) => "canary",
            Self::BlueGreen(_) => "blueGreen",
            Self::AbTest(_) => "abTest",
        }
    }
}

/// Serde's externally tagged enum would be described as a `oneOf`, whose failures carry no field paths; a map
/// of optional keys with exactly one present validates the same documents and reports errors inside the
/// strategy at their own paths.
impl JsonSchema for Strategy {
    fn schema_name() -> Cow<'static, str> {
        "Strategy".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How traffic moves to a new revision; set exactly one strategy.",
            "type": "object",
            "properties": {
                "canary": generator.subschema_for::<Canary>(),
                "blueGreen": generator.subschema_for::<BlueGreen>(),
                "abTest": generator.subschema_for::<AbTest>(),
            },
            "additionalProperties": false,
            "minProperties": 1,
            "maxProperties": 1,
        })
    }
}

/// Canary steps: either `stepWeight` (with `maxWeight`) or an explicit `stepWeights` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Canary {
    /// Percent of traffic added at each step, up to `maxWeight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub step_weight: Option<u8>,
    /// The last step's percentage when stepping by `stepWeight`; 50 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_weight: Option<u8>,
    /// Explicit step percentages, strictly increasing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(range(min = 1, max = 100)))]
    pub step_weights: Option<Vec<u8>>,
    /// How long each step runs before it is judged.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Keeps a user who reached the candidate on it while its weight grows (and on stable after a rollback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
}

/// Where a user's identity comes from, for session affinity: exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAffinity {
    /// A cookie of this name; the proxy sets it with a random key for a new user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub cookie_name: Option<String>,
    /// A request header that identifies the user (e.g. `x-user-id`), hashed consistently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub header: Option<String>,
}

/// Blue/green: the candidate is checked on a preview address with no user traffic, then one atomic switch moves
/// all traffic to it. The old revision keeps running for `scaleDownDelay`, during which a failure switches back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlueGreen {
    /// Where the candidate answers before the switch (a second listener of the proxy), as ip:port. Without it,
    /// the pre-promotion checks go straight to the candidate's instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = SOCKET_ADDRESS_FORMAT, "examples" = ["127.0.0.1:8081"]))]
    pub preview_listen: Option<SocketAddr>,
    /// Checks run against the preview before the switch.
    #[serde(default, skip_serializing_if = "Checks::is_empty")]
    pub pre_promotion: Checks,
    /// How long the old revision keeps running after the switch, ready to take the traffic back.
    #[serde(default = "default_scale_down_delay")]
    pub scale_down_delay: Duration,
}

/// A/B testing: only requests matching one of the rules reach the candidate, for `iterations` intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AbTest {
    /// Rules evaluated in order; a request matching any one goes to the candidate.
    #[serde(rename = "match")]
    #[schemars(length(min = 1))]
    pub matches: Vec<MatchRule>,
    /// How many intervals the test runs before its verdict.
    #[schemars(range(min = 1, max = 10000))]
    pub iterations: u32,
    /// The length of one iteration.
    #[serde(default = "default_interval")]
    pub interval: Duration,
}

/// A rule on a request: every header and cookie listed must match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchRule {
    /// Request headers by name (case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// Cookies by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookies: BTreeMap<String, StringMatch>,
}

/// How a header or cookie value is matched: exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    /// The whole value equals this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value matches this regular expression (Rust `regex` syntax, unanchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

fn default_scale_down_delay() -> Duration {
    Duration(std::time::Duration::from_secs(30))
}

/// `maxWeight` when the spec leaves it out.
pub const DEFAULT_MAX_WEIGHT: u8 = 50;

fn default_interval() -> Duration {
    Duration(std::time::Duration::from_secs(60))
}

impl Canary {
    /// The traffic percentages of the canary steps, in order. With `stepWeight` the steps grow by that much and
    /// the last one is capped at `maxWeight`, as Flagger does (30 up to 50 gives `[30, 50]`). `stepWeights`
    /// wins when both forms are set, and no form gives no steps; `parse` rejects both cases.
    pub fn steps(&self) -> Vec<u8> {
        if let Some(weights) = &self.step_weights {
            return weights.clone();
        }
        let Some(step) = self.step_weight.filter(|step| *step > 0) else {
            return Vec::new();
        };
        let max = self.max_weight.unwrap_or(DEFAULT_MAX_WEIGHT);
        let mut steps = Vec::new();
        let mut weight = 0u8;
        while weight < max {
            weight = weight.saturating_add(step).min(max);
            steps.push(weight);
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(step_weight: Option<u8>, max_weight: Option<u8>, step_weights: Option<Vec<u8>>) -> Canary {
        Canary {
            step_weight,
            max_weight,
            step_weights,
            interval: default_interval(),
            session_affinity: None,
        }
    }

    #[test]
    fn step_weight_grows_to_max_weight() {
        assert_eq!(canary(Some(10), Some(50), None).steps(), [10, 20, 30, 40, 50]);
    }

    #[test]
    fn last_step_is_capped_at_max_weight() {
        assert_eq!(canary(Some(30), Some(50), None).steps(), [30, 50]);
        assert_eq!(canary(Some(60), Some(50), None).steps(), [50]);
    }

    #[test]
    fn max_weight_defaults_to_fifty() {
        assert_eq!(canary(Some(25), None, None).steps(), [25, 50]);
    }

    #[test]
    fn full_rollout_in_steps_reaches_one_hundred() {
        assert_eq!(canary(Some(40), Some(100), None).steps(), [40, 80, 100]);
        assert_eq!(canary(Some(100), Some(100), None).steps(), [100]);
    }

    #[test]
    fn explicit_list_is_taken_as_is() {
        assert_eq!(
            canary(None, None, Some(vec![1, 5, 10, 25, 50])).steps(),
            [1, 5, 10, 25, 50]
        );
        assert_eq!(canary(Some(10), None, Some(vec![5, 50])).steps(), [5, 50]);
    }

    #[test]
    fn invalid_settings_give_no_steps_instead_of_looping() {
        assert!(canary(None, None, None).steps().is_empty());
        assert!(canary(Some(0), Some(50), None).steps().is_empty());
    }
}
