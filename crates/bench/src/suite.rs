//! The whole benchmark: every scenario × every row, many seeded runs each, on all cores.

use std::fmt::Write;
use std::sync::Mutex;

use crate::runner::{Algorithm, RunOutcome, Summary, run, summarize};
use crate::scenario::{ScenarioFile, Truth};
use crate::traffic::{ScenarioTraffic, TrafficError, run_seed};

/// How many runs per scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runs {
    /// Per good scenario.
    pub good: u32,
    /// Per bad scenario.
    pub bad: u32,
}

/// Runs every scenario of `file` through every row, `threads` runs at a time. Deterministic: the same file and
/// counts give the same figures whatever the number of threads.
pub fn run_suite(file: &ScenarioFile, runs: Runs, threads: usize) -> Result<Vec<Summary>, TrafficError> {
    let mut jobs = Vec::new();
    for (index, scenario) in file.scenarios.iter().enumerate() {
        let count = match scenario.truth {
            Truth::Good => runs.good,
            Truth::Bad => runs.bad,
        };
        for algorithm in Algorithm::ALL {
            jobs.push((index, algorithm, count));
        }
    }
    let traffic: Vec<ScenarioTraffic> = (0..file.scenarios.len())
        .map(|i| ScenarioTraffic::new(file, i))
        .collect::<Result<_, _>>()?;
    let results: Mutex<Vec<Option<Result<Summary, TrafficError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let job = {
                        let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
                        let job = *next;
                        *next += 1;
                        job
                    };
                    let Some(&(index, algorithm, count)) = jobs.get(job) else {
                        break;
                    };
                    let scenario = &file.scenarios[index];
                    let outcomes: Result<Vec<RunOutcome>, TrafficError> = (0..u64::from(count))
                        .map(|rep| {
                            run(
                                &traffic[index],
                                scenario,
                                algorithm,
                                run_seed(file.seed, index as u64, rep),
                            )
                        })
                        .collect();
                    let plan = algorithm.plan(scenario);
                    let plan_end = plan.interval.as_secs_f64() * plan.steps.len() as f64;
                    let summary = outcomes.map(|o| summarize(scenario, algorithm, &o, plan_end));
                    results.lock().unwrap_or_else(|p| p.into_inner())[job] = Some(summary);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

fn cell(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

/// The table: one line per scenario × row.
pub fn render_table(summaries: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | truth | algorithm | runs | rollback % | promoted % | held % | median detection s | median canary req at rollback | mean excess errors | median promotion s |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for s in summaries {
        let truth = match s.truth {
            Truth::Good => "good",
            Truth::Bad => "bad",
        };
        let _ = writeln!(
            out,
            "| {} | {truth} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
            s.scenario,
            s.algorithm,
            s.runs,
            s.rollback_pct,
            s.promoted_pct,
            s.held_pct,
            cell(s.median_detection_s, 0),
            cell(s.median_canary_requests_at_rollback, 0),
            cell(s.mean_excess_errors_at_rollback, 1),
            cell(s.median_promotion_s, 0),
        );
    }
    out
}
