//! The scenarios file: traffic with a known truth, in the format of `scenarios.json`.
//!
//! The benchmark reads its scenarios from a file so that other suites can be given to it. Loading checks
//! everything the generator relies on and names the field, the value and what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_analysis::stats::Histogram;
use thiserror::Error;

/// The only format version this reader knows.
const FORMAT_VERSION: u32 = 1;

/// Why a scenarios file could not be used.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenarios file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not JSON of the expected shape (serde names the line and column).
    #[error("scenarios file {origin} is not valid: {source}")]
    Parse {
        /// The file, or `<text>` when parsed from a string.
        origin: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A value is out of range or refers to something that does not exist.
    #[error("`{field}` is {value}; expected {expected}")]
    Invalid {
        /// Where, e.g. `scenarios[5] (p99_+10%).candidate_latency.factor`.
        field: String,
        /// The value found.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
}

/// A whole scenarios file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Format version (1).
    pub version: u32,
    /// Length of a tick, in seconds: counts are drawn per tick and decisions fall on tick boundaries.
    pub tick_seconds: u32,
    /// Finite upper bounds of the latency buckets in ms (`+Inf` is implied).
    pub latency_buckets_ms: Vec<f64>,
    /// Named latency distributions that scenarios refer to.
    pub latency_models: BTreeMap<String, LatencyModel>,
    /// The compressed day used by scenarios with `diurnal: true`.
    pub diurnal: Diurnal,
    /// How many runs to make of each scenario.
    pub replications: Replications,
    /// The base seed of all runs.
    pub seed: u64,
    /// The scenarios, in order (the order is part of each run's seed).
    pub scenarios: Vec<Scenario>,
}

/// A latency distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LatencyModel {
    /// A lognormal distribution.
    Lognormal {
        /// Its median (e^μ), in ms.
        median_ms: f64,
        /// σ of the log.
        sigma: f64,
    },
    /// `(1 − tail_weight)·body + tail_weight·tail`.
    Mixture {
        /// Most requests.
        body: Component,
        /// Fraction of requests drawn from the tail.
        tail_weight: f64,
        /// The slow ones.
        tail: Component,
    },
}

/// One part of a mixture.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Component {
    /// A lognormal distribution.
    Lognormal {
        /// Its median (e^μ), in ms.
        median_ms: f64,
        /// σ of the log.
        sigma: f64,
    },
    /// A Pareto distribution: P(L > x) = (x_m / x)^α above x_m.
    Pareto {
        /// Scale (the minimum), in ms.
        xm_ms: f64,
        /// Shape; α ≤ 2 gives infinite variance.
        alpha: f64,
    },
}

/// Load over a compressed day: L(t) = 1 + amplitude·sin(2πt / period).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diurnal {
    /// Length of the "day", in seconds.
    pub period_s: u32,
    /// Swing of the load around 1.
    pub amplitude: f64,
    /// Latency is multiplied by 1 + latency_gain·(L − 1).
    pub latency_gain: f64,
    /// Error probability is multiplied by 1 + error_gain·(L − 1).
    pub error_gain: f64,
}

/// Runs per scenario, by truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replications {
    /// Runs of each scenario whose candidate is bad.
    pub bad: u32,
    /// Runs of each scenario whose candidate is good.
    pub good: u32,
}

/// Whether the candidate should be promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Truth {
    /// No regression: a rollback is a false alarm.
    Good,
    /// A regression: a promotion is a miss.
    Bad,
}

/// One scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique name, e.g. `err_1->5%`.
    pub name: String,
    /// Whether the candidate is good or bad.
    pub truth: Truth,
    /// Mean requests per second at load 1.
    pub rate_rps: f64,
    /// Whether the load follows the compressed day.
    pub diurnal: bool,
    /// Error probabilities per request at load 1.
    pub error_rate: ErrorRates,
    /// Name of the latency model (a key of `latency_models`).
    pub latency: String,
    /// How the candidate's latency differs from the stable one's.
    pub candidate_latency: CandidateLatency,
    /// The traffic plans' weights.
    pub plan: Plan,
}

/// Error probabilities of the two versions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRates {
    /// The old version's.
    pub stable: f64,
    /// The new version's.
    pub candidate: f64,
}

/// The candidate's latency transform.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum CandidateLatency {
    /// Same distribution as the stable version.
    None,
    /// Quantile function multiplied by 1 below u = 0.90, ramping linearly to `factor` at u = 0.99.
    Tailwarp {
        /// The multiplier of p99 and above.
        factor: f64,
    },
    /// Every request `ms` slower.
    Shift {
        /// Added latency, in ms.
        ms: f64,
    },
}

/// Traffic weights, in percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Progressive plan: weight added per step.
    pub step_weight: u32,
    /// Progressive plan: last weight before promotion.
    pub max_weight: u32,
    /// Fixed plan: weight of the canary (and of the baseline).
    pub fixed_weight: u32,
}

impl ScenarioFile {
    /// Reads and checks a scenarios file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks the text of a scenarios file.
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        Self::parse(text, "<text>")
    }

    fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let file: ScenarioFile = serde_json::from_str(text).map_err(|source| ScenarioError::Parse {
            origin: origin.to_owned(),
            source,
        })?;
        file.validate()?;
        Ok(file)
    }

    /// Checks every value the traffic generator relies on.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.version != FORMAT_VERSION {
            return Err(invalid("version", self.version, format!("{FORMAT_VERSION}")));
        }
        if self.tick_seconds == 0 {
            return Err(invalid("tick_seconds", 0, "a positive number of seconds"));
        }
        Histogram::new(self.latency_buckets_ms.clone()).map_err(|error| ScenarioError::Invalid {
            field: "latency_buckets_ms".to_owned(),
            value: format!("{:?}", self.latency_buckets_ms),
            expected: error.to_string(),
        })?;
        for (name, model) in &self.latency_models {
            model.validate(&format!("latency_models.{name}"))?;
        }
        self.diurnal.validate(self.tick_seconds)?;
        let mut names = std::collections::BTreeSet::new();
        for (index, scenario) in self.scenarios.iter().enumerate() {
            let at = format!("scenarios[{index}] ({})", scenario.name);
            if !names.insert(scenario.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name"),
                    &scenario.name,
                    "a name used by no other scenario",
                ));
            }
            scenario.validate(&at, &self.latency_models)?;
        }
        Ok(())
    }
}

impl LatencyModel {
    fn validate(&self, at: &str) -> Result<(), ScenarioError> {
        match self {
            LatencyModel::Lognormal { median_ms, sigma } => validate_lognormal(at, *median_ms, *sigma),
            LatencyModel::Mixture {
                body,
                tail_weight,
                tail,
            } => {
                body.validate(&format!("{at}.body"))?;
                tail.validate(&format!("{at}.tail"))?;
                check(
                    format!("{at}.tail_weight"),
                    *tail_weight,
                    (0.0..=1.0).contains(tail_weight),
                    "a fraction in [0, 1]",
                )
            }
        }
    }
}

impl Component {
    fn validate(&self, at: &str) -> Result<(), ScenarioError> {
        match *self {
            Component::Lognormal { median_ms, sigma } => validate_lognormal(at, median_ms, sigma),
            Component::Pareto { xm_ms, alpha } => {
                check(format!("{at}.xm_ms"), xm_ms, positive(xm_ms), "a positive number of ms")?;
                check(format!("{at}.alpha"), alpha, positive(alpha), "a positive shape")
            }
        }
    }
}

impl Diurnal {
    fn validate(&self, tick_seconds: u32) -> Result<(), ScenarioError> {
        if self.period_s == 0 || !self.period_s.is_multiple_of(tick_seconds) {
            return Err(invalid(
                "diurnal.period_s",
                self.period_s,
                format!("a positive multiple of tick_seconds ({tick_seconds})"),
            ));
        }
        check(
            "diurnal.amplitude",
            self.amplitude,
            (0.0..=1.0).contains(&self.amplitude),
            "a number in [0, 1] (load stays >= 0)",
        )?;
        let latency_floor = 1.0 - self.latency_gain * self.amplitude;
        check(
            "diurnal.latency_gain",
            self.latency_gain,
            self.latency_gain >= 0.0 && latency_floor > 0.0,
            "a gain >= 0 that keeps 1 - gain * amplitude above 0",
        )?;
        check(
            "diurnal.error_gain",
            self.error_gain,
            self.error_gain >= 0.0 && self.error_gain.is_finite(),
            "a gain >= 0",
        )
    }
}

impl Scenario {
    fn validate(&self, at: &str, models: &BTreeMap<String, LatencyModel>) -> Result<(), ScenarioError> {
        check(
            format!("{at}.rate_rps"),
            self.rate_rps,
            self.rate_rps >= 0.0 && self.rate_rps.is_finite(),
            "a rate >= 0",
        )?;
        for (side, rate) in [
            ("stable", self.error_rate.stable),
            ("candidate", self.error_rate.candidate),
        ] {
            check(
                format!("{at}.error_rate.{side}"),
                rate,
                (0.0..=1.0).contains(&rate),
                "a probability in [0, 1]",
            )?;
        }
        if !models.contains_key(&self.latency) {
            let known: Vec<&String> = models.keys().collect();
            return Err(invalid(
                format!("{at}.latency"),
                format!("{:?}", self.latency),
                format!("one of {known:?}"),
            ));
        }
        match self.candidate_latency {
            CandidateLatency::None => {}
            CandidateLatency::Tailwarp { factor } => check(
                format!("{at}.candidate_latency.factor"),
                factor,
                factor >= 1.0 && factor.is_finite(),
                "a factor >= 1 (a tailwarp slows the tail)",
            )?,
            CandidateLatency::Shift { ms } => check(
                format!("{at}.candidate_latency.ms"),
                ms,
                ms >= 0.0 && ms.is_finite(),
                "a number of ms >= 0",
            )?,
        }
        let plan = self.plan;
        if plan.step_weight == 0 || plan.step_weight > plan.max_weight || plan.max_weight > 100 {
            return Err(invalid(
                format!("{at}.plan"),
                format!("step_weight {} / max_weight {}", plan.step_weight, plan.max_weight),
                "0 < step_weight <= max_weight <= 100",
            ));
        }
        if plan.fixed_weight == 0 || plan.fixed_weight > 50 {
            return Err(invalid(
                format!("{at}.plan.fixed_weight"),
                plan.fixed_weight,
                "a weight in 1..=50 (canary and baseline each get it)",
            ));
        }
        Ok(())
    }
}

fn validate_lognormal(at: &str, median_ms: f64, sigma: f64) -> Result<(), ScenarioError> {
    check(
        format!("{at}.median_ms"),
        median_ms,
        positive(median_ms),
        "a positive number of ms",
    )?;
    check(format!("{at}.sigma"), sigma, positive(sigma), "a positive σ")
}

fn positive(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

fn check(field: impl Into<String>, value: f64, ok: bool, expected: &str) -> Result<(), ScenarioError> {
    if ok {
        Ok(())
    } else {
        Err(invalid(field, value, expected))
    }
}

fn invalid(field: impl Into<String>, value: impl ToString, expected: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios.json")
    }

    fn bundled_text() -> String {
        std::fs::read_to_string(bundled_path()).unwrap()
    }

    #[test]
    fn the_bundled_file_loads_with_the_readme_scenarios() {
        let file = ScenarioFile::load(&bundled_path()).unwrap();
        assert_eq!(file.tick_seconds, 5);
        assert_eq!(file.seed, 20240601);
        assert_eq!(file.replications, Replications { bad: 100, good: 200 });
        assert_eq!(file.latency_buckets_ms.len(), 13);
        let names: Vec<&str> = file.scenarios.iter().map(|scenario| scenario.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "null",
                "null_err1%",
                "err_0.5->1%",
                "err_1->2%",
                "err_1->5%",
                "p99_+10%",
                "p99_+50%",
                "shift_+5ms",
                "heavytail_null",
                "heavytail_p99+50%",
                "diurnal_null",
                "diurnal_err_0.5->1%",
                "lowtraffic_null",
                "lowtraffic_err_1->5%",
                "tinyshare_null",
                "tinyshare_err_1->5%",
            ]
        );
        let bad = file
            .scenarios
            .iter()
            .filter(|scenario| scenario.truth == Truth::Bad)
            .count();
        assert_eq!(bad, 10);
        assert_eq!(
            file.scenarios[5].candidate_latency,
            CandidateLatency::Tailwarp { factor: 1.1 }
        );
        assert_eq!(
            file.latency_models["HT"],
            LatencyModel::Mixture {
                body: Component::Lognormal {
                    median_ms: 60.0,
                    sigma: 0.35
                },
                tail_weight: 0.05,
                tail: Component::Pareto {
                    xm_ms: 150.0,
                    alpha: 1.8
                },
            }
        );
    }

    #[test]
    fn the_bundled_file_is_the_shared_suite() {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/bench/analysis/scenarios.json");
        if let Ok(shared) = std::fs::read_to_string(shared) {
            assert_eq!(
                bundled_text(),
                shared,
                "crates/bench/scenarios.json differs from the shared suite"
            );
        }
    }

    #[test]
    fn invalid_values_name_the_field_the_value_and_what_was_expected() {
        let cases = [
            (
                r#""factor": 1.1"#,
                r#""factor": 0.9"#,
                "`scenarios[5] (p99_+10%).candidate_latency.factor` is 0.9; expected a factor >= 1 (a tailwarp slows the tail)",
            ),
            (
                r#""latency": "HT""#,
                r#""latency": "XX""#,
                r#"`scenarios[8] (heavytail_null).latency` is "XX"; expected one of ["HT", "LN"]"#,
            ),
            (
                r#""candidate": 0.05}"#,
                r#""candidate": 5.0}"#,
                "`scenarios[4] (err_1->5%).error_rate.candidate` is 5; expected a probability in [0, 1]",
            ),
            (
                r#""period_s": 3600"#,
                r#""period_s": 3601"#,
                "`diurnal.period_s` is 3601; expected a positive multiple of tick_seconds (5)",
            ),
            (r#""version": 1"#, r#""version": 2"#, "`version` is 2; expected 1"),
            (
                r#""sigma": 0.55"#,
                r#""sigma": -0.55"#,
                "`latency_models.LN.sigma` is -0.55; expected a positive σ",
            ),
            (
                r#""name": "null_err1%""#,
                r#""name": "null""#,
                "`scenarios[1] (null).name` is null; expected a name used by no other scenario",
            ),
        ];
        let text = bundled_text();
        for (from, to, message) in cases {
            assert!(text.contains(from), "fixture does not contain {from}");
            let error = ScenarioFile::from_json(&text.replacen(from, to, 1)).unwrap_err();
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn unreadable_and_malformed_files_say_where() {
        let missing = ScenarioFile::load(Path::new("/nonexistent/scenarios.json")).unwrap_err();
        assert!(
            missing
                .to_string()
                .starts_with("cannot read scenarios file /nonexistent/scenarios.json: "),
            "{missing}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.json");
        std::fs::write(&path, bundled_text().replacen("\"rate_rps\"", "\"rate\"", 1)).unwrap();
        let typo = ScenarioFile::load(&path).unwrap_err().to_string();
        assert!(
            typo.starts_with(&format!(
                "scenarios file {} is not valid: unknown field `rate`",
                path.display()
            )),
            "{typo}"
        );
        assert!(typo.contains("line"), "{typo}");
    }
}
