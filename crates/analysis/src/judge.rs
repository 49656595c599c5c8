//! The judges behind one interface, so the engine drives them alike and persists their state.

use serde::{Deserialize, Serialize};
use sluice_spec::MetricCheck;

use crate::{MannWhitneyConfig, MannWhitneyState, SequentialConfig, SequentialState, Verdict, Window};

/// Which judge decides, with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "judge", rename_all = "camelCase")]
pub enum JudgeConfig {
    /// Flagger's fixed thresholds, judged once per step interval with failed checks counted.
    Threshold { checks: Vec<MetricCheck> },
    /// The anytime-valid comparison with stable (the default).
    Sequential(SequentialConfig),
    /// Kayenta's fixed-horizon comparison of interval series.
    MannWhitney(MannWhitneyConfig),
}

/// What a comparative judge has accumulated during a rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "judge", rename_all = "camelCase")]
pub enum JudgeState {
    /// The threshold judge keeps nothing between intervals.
    #[default]
    Threshold,
    /// The sequential judge's e-processes and totals.
    Sequential(Box<SequentialState>),
    /// The Mann–Whitney judge's series.
    MannWhitney(MannWhitneyState),
}

impl JudgeState {
    /// A fresh state for `config`.
    pub fn new(config: &JudgeConfig) -> Self {
        match config {
            JudgeConfig::Threshold { .. } => JudgeState::Threshold,
            JudgeConfig::Sequential(c) => JudgeState::Sequential(Box::new(SequentialState::new(c))),
            JudgeConfig::MannWhitney(_) => JudgeState::MannWhitney(MannWhitneyState::default()),
        }
    }

    /// Adds an evaluation window. `Fail` means the candidate must not go on; `Inconclusive` that the window was
    /// not usable (it is not counted).
    pub fn observe(&mut self, config: &JudgeConfig, window: &Window) -> Verdict {
        let matching = matches!(
            (&*self, config),
            (JudgeState::Sequential(_), JudgeConfig::Sequential(_))
                | (JudgeState::MannWhitney(_), JudgeConfig::MannWhitney(_))
                | (JudgeState::Threshold, JudgeConfig::Threshold { .. })
        );
        if !matching {
            // The spec's judge changed mid-rollout: start the new judge's evidence afresh.
            *self = JudgeState::new(config);
        }
        match (self, config) {
            (JudgeState::Sequential(state), JudgeConfig::Sequential(c)) => state.observe(c, window),
            (JudgeState::MannWhitney(state), JudgeConfig::MannWhitney(_)) => state.observe(window),
            (_, JudgeConfig::Threshold { checks }) => crate::judge_thresholds(checks, window),
            _ => Verdict::Inconclusive {
                reason: "the judge changed during the rollout".into(),
            },
        }
    }

    /// The verdict at the end of the plan: `Pass` promotes, `Fail` rolls back, `Inconclusive` is what
    /// `onInconclusive` decides.
    pub fn conclude(&self, config: &JudgeConfig) -> Verdict {
        match (self, config) {
            (JudgeState::Sequential(state), JudgeConfig::Sequential(c)) => state.conclude(c),
            (JudgeState::MannWhitney(state), JudgeConfig::MannWhitney(c)) => state.conclude(c),
            _ => Verdict::Inconclusive {
                reason: "no evidence was collected".into(),
            },
        }
    }
}
