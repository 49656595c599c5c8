//! The default judge's guarantee, checked by simulation: a good candidate evaluated every second, under a
//! progressive plan whose weights change every minute, is rolled back in fewer than α of runs.

use sluice_bench::runner::{Algorithm, Decision, run};
use sluice_bench::{ScenarioFile, ScenarioTraffic, run_seed};

#[test]
fn a_good_candidate_looked_at_every_second_is_rolled_back_in_under_alpha_of_runs() {
    let mut file = ScenarioFile::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios.json"
    )))
    .expect("the repository's suite loads");
    file.tick_seconds = 1;
    let index = file
        .scenarios
        .iter()
        .position(|s| s.name == "null")
        .expect("the suite has a null scenario");
    let traffic = ScenarioTraffic::new(&file, index).expect("valid scenario");
    let scenario = &file.scenarios[index];
    let runs = 1000;
    let mut rollbacks = 0;
    let mut promotions = 0;
    for rep in 0..runs {
        let outcome = run(
            &traffic,
            scenario,
            Algorithm::SluiceProgressive,
            run_seed(7, index as u64, rep),
        )
        .unwrap();
        match outcome.decision {
            Decision::Rollback => rollbacks += 1,
            Decision::Promote => promotions += 1,
            Decision::Held => {}
        }
    }
    let alpha = 0.05;
    let rate = rollbacks as f64 / runs as f64;
    assert!(
        rate < alpha,
        "false rollbacks {rollbacks}/{runs} = {rate:.3}, not under α = {alpha}"
    );
    // The test must be able to fail the other way too: a judge that never decides would pass the line above.
    assert!(
        promotions as f64 / runs as f64 > 0.9,
        "only {promotions}/{runs} good runs promoted"
    );
}
