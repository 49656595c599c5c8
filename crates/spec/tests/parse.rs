//! `parse` as users meet it: good specs come back with defaults filled in, bad ones with every problem listed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sluice_spec::{
    Analysis, Canary, DEFAULT_TOLERANCE, Duration, Judge, MannWhitneySettings, Metadata, MetricCheck, MetricName,
    MetricProvider, OnFailure, OnInconclusive, ProcessSpec, Readiness, RevisionSpec, ServiceBody, ServiceSpec, Stages,
    Strategy, ThresholdRange, parse,
};

const MINIMAL: &str = include_str!("fixtures/minimal.yaml");
const FULL: &str = include_str!("fixtures/full.yaml");

/// The minimal spec with each `(from, to)` replacement applied; every `from` must occur, so a case cannot
/// silently test the unchanged spec.
fn minimal_with(replacements: &[(&str, &str)]) -> String {
    replacements.iter().fold(MINIMAL.to_owned(), |text, (from, to)| {
        assert!(text.contains(from), "{from:?} is not in the minimal spec");
        text.replacen(from, to, 1)
    })
}

/// The minimal spec with `yaml` appended under `spec:` (indented by two spaces).
fn minimal_plus(yaml: &str) -> String {
    let indented: String = yaml.lines().map(|line| format!("  {line}\n")).collect();
    format!("{MINIMAL}{indented}")
}

fn check(name: &str, yaml: &str, expected: &[&str]) {
    match parse(yaml) {
        Ok(spec) => panic!("{name}: expected errors {expected:#?}, but it parsed: {spec:#?}"),
        Err(errors) => {
            let lines: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
            assert_eq!(lines, expected, "{name}");
            assert_eq!(errors.to_string(), expected.join("\n"), "{name}: Display");
        }
    }
}

const STEP: (&str, &str) = ("      stepWeight: 10\n", "");

#[test]
fn bad_specs_report_each_problem_with_its_path() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "step weight out of range",
            minimal_with(&[("stepWeight: 10", "stepWeight: 0")]),
            vec!["spec.strategy.canary.stepWeight: must be 1..=100, got 0"],
        ),
        (
            "command without port placeholder",
            minimal_with(&[(
                r#"["./checkout", "--port", "{port}"]"#,
                r#"["./checkout", "--port", "8080"]"#,
            )]),
            vec!["spec.revision.process.command: must contain the placeholder {port} in one of its elements"],
        ),
        (
            "request-duration without max",
            minimal_plus(
                "analysis:\n  metrics:\n    - name: request-success-rate\n      thresholdRange: { min: 99 }\n    \
                 - name: request-duration\n      thresholdRange: {}",
            ),
            vec!["spec.analysis.metrics[1].thresholdRange.max: required for request-duration"],
        ),
        (
            "misspelled field",
            minimal_with(&[("      command:", "      instncs: 2\n      command:")]),
            vec![
                "spec.revision.process.instncs: unknown field (expected one of: command, env, instances, readiness, \
                 workingDir)",
            ],
        ),
        (
            "listen is not a socket address",
            minimal_with(&[("listen: 127.0.0.1:8080", "listen: localhost")]),
            vec![r#"spec.listen: expected a socket address like 127.0.0.1:8080, got "localhost""#],
        ),
        (
            "listen is a bare port",
            minimal_with(&[("listen: 127.0.0.1:8080", "listen: 8080")]),
            vec!["spec.listen: expected a socket address like 127.0.0.1:8080, got 8080"],
        ),
        (
            "duration in words",
            minimal_plus("progressDeadline: soon"),
            vec![r#"spec.progressDeadline: expected a duration like 30s or 1m30s, got "soon""#],
        ),
        (
            "duration units out of order (shape passes the schema, jiff rejects it)",
            minimal_with(&[("stepWeight: 10", "stepWeight: 10\n      interval: 30s 1m")]),
            vec![r#"spec.strategy.canary.interval: expected a duration like 30s or 1m30s, got "30s 1m""#],
        ),
        (
            "zero durations",
            minimal_plus("progressDeadline: 0s\nanalysis:\n  holdTimeout: 0ms"),
            vec![
                r#"spec.analysis.holdTimeout: must be greater than 0, got "0ms""#,
                r#"spec.progressDeadline: must be greater than 0, got "0s""#,
            ],
        ),
        (
            "wrong api version",
            minimal_with(&[("apiVersion: sluice.dev/v1alpha1", "apiVersion: v2")]),
            vec![r#"apiVersion: expected sluice.dev/v1alpha1, got "v2""#],
        ),
        (
            "wrong kind",
            minimal_with(&[("kind: Service", "kind: Deployment")]),
            vec![r#"kind: expected Service, got "Deployment""#],
        ),
        (
            "missing required fields",
            minimal_with(&[
                ("metadata:\n  name: checkout", "metadata: {}"),
                ("  listen: 127.0.0.1:8080\n", ""),
            ]),
            vec!["metadata.name: required", "spec.listen: required"],
        ),
        (
            "names that are not DNS labels",
            minimal_with(&[
                ("name: checkout", "name: Check_out"),
                ("    process:", &format!("    name: {}\n    process:", "a".repeat(64))),
            ]),
            vec![
                "metadata.name: must be lowercase letters, digits and '-', starting and ending with a letter or \
                 digit, got \"Check_out\"",
                "spec.revision.name: must be at most 63 characters, got 64",
            ],
        ),
        (
            "both canary forms",
            minimal_with(&[("stepWeight: 10", "stepWeight: 10\n      stepWeights: [10, 20]")]),
            vec!["spec.strategy.canary: set either stepWeight or stepWeights, not both"],
        ),
        (
            "neither canary form",
            minimal_with(&[STEP, ("    canary:\n", "    canary:\n      interval: 30s\n")]),
            vec!["spec.strategy.canary: set either stepWeight or stepWeights"],
        ),
        (
            "max weight below step weight",
            minimal_with(&[("stepWeight: 10", "stepWeight: 30\n      maxWeight: 20")]),
            vec!["spec.strategy.canary.maxWeight: must be at least stepWeight (30), got 20"],
        ),
        (
            "step weight above the default max weight",
            minimal_with(&[("stepWeight: 10", "stepWeight: 60")]),
            vec!["spec.strategy.canary.stepWeight: must be at most maxWeight (50 when not set), got 60"],
        ),
        (
            "max weight with an explicit list",
            minimal_with(&[
                STEP,
                (
                    "    canary:\n",
                    "    canary:\n      stepWeights: [5, 10]\n      maxWeight: 10\n",
                ),
            ]),
            vec!["spec.strategy.canary.maxWeight: only allowed with stepWeight"],
        ),
        (
            "explicit list not increasing, out of range, empty",
            minimal_with(&[
                STEP,
                (
                    "    canary:\n",
                    "    canary:\n      stepWeights: [5, 25, 25, 10, 101]\n",
                ),
            ]),
            vec![
                "spec.strategy.canary.stepWeights[2]: must be greater than the previous step (25), got 25",
                "spec.strategy.canary.stepWeights[3]: must be greater than the previous step (25), got 10",
                "spec.strategy.canary.stepWeights[4]: must be 1..=100, got 101",
            ],
        ),
        (
            "empty explicit list",
            minimal_with(&[STEP, ("    canary:\n", "    canary:\n      stepWeights: []\n")]),
            vec!["spec.strategy.canary.stepWeights: must not be empty"],
        ),
        (
            "no strategy set",
            minimal_with(&[("    canary:\n      stepWeight: 10\n", "    {}\n")]),
            vec!["spec.strategy: must set exactly one of: abTest, blueGreen, canary"],
        ),
        (
            "unknown strategy",
            minimal_with(&[("    canary:\n      stepWeight: 10\n", "    rolling: {}\n")]),
            vec!["spec.strategy.rolling: unknown field (expected one of: abTest, blueGreen, canary)"],
        ),
        (
            "process settings",
            minimal_with(&[(
                "      command:",
                "      instances: 65\n      env: { \"A=B\": x, PORT: 8080 }\n      readiness: { http: healthz }\n      \
                 command:",
            )]),
            vec![
                r#"spec.revision.process.env: variable names must be non-empty without '=' or NUL, got "A=B""#,
                "spec.revision.process.env.PORT: expected a string, got 8080",
                "spec.revision.process.instances: must be 1..=64, got 65",
                r#"spec.revision.process.readiness.http: must be a path starting with '/', got "healthz""#,
            ],
        ),
        (
            "wrong value types",
            minimal_with(&[
                (r#"["./checkout", "--port", "{port}"]"#, "./checkout --port {port}"),
                ("stepWeight: 10", "stepWeight: ten"),
            ]),
            vec![
                r#"spec.revision.process.command: expected a list, got "./checkout --port {port}""#,
                r#"spec.strategy.canary.stepWeight: expected an integer, got "ten""#,
            ],
        ),
        (
            "session affinity",
            "apiVersion: sluice.dev/v1alpha1\nkind: Service\nmetadata: { name: web }\nspec:\n  listen: 127.0.0.1:8080\n  \
             revision: { process: { command: [\"./app\", \"{port}\"] } }\n  strategy:\n    canary:\n      stepWeight: 10\n      \
             sessionAffinity: { cookieName: c, header: x-user }"
                .to_string(),
            vec!["spec.strategy.canary.sessionAffinity: set exactly one of cookieName or header"],
        ),
        (
            "custom metrics",
            minimal_plus(
                "analysis:\n  customMetrics:\n    - name: both\n      query: up\n      web: { url: \"http://127.0.0.1:1/x\", jsonPath: $.v }\n      \
                 thresholdRange: { max: 1 }\n    - name: neither\n      thresholdRange: { min: 0 }\n    - name: unbounded\n      \
                 query: up\n      thresholdRange: {}",
            ),
            vec![
                "spec.analysis.customMetrics[0]: set either query or web, not both",
                "spec.analysis.customMetrics[1]: set either query or web",
                "spec.analysis.customMetrics[2].query: needs spec.analysis.provider of type prometheus to run against",
                "spec.analysis.customMetrics[2].thresholdRange: set min, max or both",
            ],
        ),
        (
            "analysis settings",
            minimal_plus(
                "analysis:\n  judge: bayes\n  onFailure: pause\n  threshold: 0\n  metrics:\n    - name: latency\n      \
                 thresholdRange: { max: 5 }\n    - name: request-success-rate\n      thresholdRange: { min: 120, max: 1 }\n    \
                 - name: request-duration\n      thresholdRange: { max: 0 }",
            ),
            vec![
                r#"spec.analysis.judge: expected one of: sequential, threshold, mannWhitney, got "bayes""#,
                r#"spec.analysis.metrics[0].name: expected one of: request-success-rate, request-duration, got "latency""#,
                "spec.analysis.metrics[1].thresholdRange.max: not allowed for request-success-rate",
                "spec.analysis.metrics[1].thresholdRange.min: must be 0..=100 (a percentage), got 120",
                "spec.analysis.metrics[2].thresholdRange.max: must be greater than 0 (milliseconds), got 0",
                r#"spec.analysis.onFailure: expected one of: rollback, hold, got "pause""#,
                "spec.analysis.threshold: must be 1..=1000, got 0",
            ],
        ),
        (
            "document is not a map",
            "just text".to_owned(),
            vec![r#"expected a map, got "just text""#],
        ),
        ("empty document", String::new(), vec!["expected a map, got null"]),
        (
            "yaml syntax error",
            minimal_with(&[("stepWeight: 10", "stepWeight: [10")]),
            vec!["unclosed bracket '[' at line 12, column 19"],
        ),
        (
            "duplicate key",
            minimal_with(&[("kind: Service", "kind: Service\nkind: Service")]),
            vec!["duplicate mapping key `kind` is not allowed here at line 3, column 1"],
        ),
    ];
    for (name, yaml, expected) in cases {
        check(name, &yaml, &expected);
    }
}

#[test]
fn several_problems_in_one_file_are_reported_together_in_path_order() {
    let yaml = minimal_with(&[
        ("apiVersion: sluice.dev/v1alpha1", "apiVersion: v2"),
        ("listen: 127.0.0.1:8080", "listen: localhost"),
        (r#""{port}""#, r#""8080""#),
        ("      command:", "      instncs: 2\n      command:"),
        ("stepWeight: 10", "stepWeight: 0\n      interval: soon"),
    ]);
    check(
        "several problems",
        &yaml,
        &[
            r#"apiVersion: expected sluice.dev/v1alpha1, got "v2""#,
            r#"spec.listen: expected a socket address like 127.0.0.1:8080, got "localhost""#,
            "spec.revision.process.command: must contain the placeholder {port} in one of its elements",
            "spec.revision.process.instncs: unknown field (expected one of: command, env, instances, readiness, \
             workingDir)",
            r#"spec.strategy.canary.interval: expected a duration like 30s or 1m30s, got "soon""#,
            "spec.strategy.canary.stepWeight: must be 1..=100, got 0",
        ],
    );
}

fn secs(seconds: u64) -> Duration {
    Duration(std::time::Duration::from_secs(seconds))
}

#[test]
fn minimal_spec_gets_every_default() {
    let expected = ServiceSpec {
        api_version: "sluice.dev/v1alpha1".to_owned(),
        kind: "Service".to_owned(),
        metadata: Metadata {
            name: "checkout".to_owned(),
        },
        spec: ServiceBody {
            listen: "127.0.0.1:8080".parse().unwrap(),
            revision: RevisionSpec {
                name: None,
                process: ProcessSpec {
                    command: vec!["./checkout".to_owned(), "--port".to_owned(), "{port}".to_owned()],
                    env: BTreeMap::new(),
                    working_dir: None,
                    instances: 1,
                    readiness: Readiness {
                        http: "/".to_owned(),
                        timeout: secs(2),
                    },
                },
            },
            progress_deadline: secs(60),
            stages: Stages::default(),
            webhooks: Vec::new(),
            alerts: Vec::new(),
            strategy: Strategy::Canary(Canary {
                step_weight: Some(10),
                max_weight: None,
                step_weights: None,
                interval: secs(60),
                session_affinity: None,
            }),
            analysis: Analysis {
                judge: Judge::Sequential,
                evaluation_interval: secs(1),
                alpha: 0.05,
                tolerance: DEFAULT_TOLERANCE,
                on_inconclusive: OnInconclusive::Hold,
                mann_whitney: MannWhitneySettings::default(),
                provider: MetricProvider::Builtin,
                custom_metrics: Vec::new(),
                threshold: 5,
                on_failure: OnFailure::Rollback,
                hold_timeout: secs(3600),
                metrics: vec![
                    MetricCheck {
                        name: MetricName::RequestSuccessRate,
                        threshold_range: ThresholdRange {
                            min: Some(99.0),
                            max: None,
                        },
                    },
                    MetricCheck {
                        name: MetricName::RequestDuration,
                        threshold_range: ThresholdRange {
                            min: None,
                            max: Some(500.0),
                        },
                    },
                ],
            },
        },
    };
    assert_eq!(parse(MINIMAL).unwrap(), expected);
    let canary = expected.spec.strategy.canary().expect("a canary strategy");
    assert_eq!(canary.steps(), [10, 20, 30, 40, 50]);
}

#[test]
fn full_spec_keeps_every_setting() {
    let spec = parse(FULL).unwrap();
    let process = &spec.spec.revision.process;
    assert_eq!(spec.spec.revision.name.as_deref(), Some("v42"));
    assert_eq!(
        process.env,
        BTreeMap::from([("RUST_LOG".to_owned(), "info".to_owned())])
    );
    assert_eq!(process.working_dir, Some(PathBuf::from("/srv/checkout")));
    assert_eq!(process.instances, 2);
    assert_eq!(
        process.readiness,
        Readiness {
            http: "/healthz".to_owned(),
            timeout: secs(2)
        }
    );
    assert_eq!(spec.spec.progress_deadline, secs(90));
    let canary = spec.spec.strategy.canary().unwrap();
    assert_eq!((canary.interval, canary.steps()), (secs(90), vec![10, 20, 30, 40]));
    let analysis = &spec.spec.analysis;
    assert_eq!(
        (analysis.judge, analysis.threshold, analysis.on_failure),
        (Judge::Threshold, 3, OnFailure::Hold)
    );
    assert_eq!(analysis.hold_timeout, secs(5400));
    assert_eq!(
        analysis.metrics[0].threshold_range,
        ThresholdRange {
            min: Some(99.5),
            max: None
        }
    );
    assert_eq!(
        analysis.metrics[1].threshold_range,
        ThresholdRange {
            min: None,
            max: Some(250.0)
        }
    );
}

#[test]
fn explicit_steps_and_json_input_are_accepted() {
    let json = r#"{"apiVersion": "sluice.dev/v1alpha1", "kind": "Service", "metadata": {"name": "api-2"},
        "spec": {"listen": "[::1]:9000", "revision": {"process": {"command": ["serve", "--listen=:{port}"]}},
                 "strategy": {"canary": {"stepWeights": [1, 5, 10.0, 25, 50]}}}}"#;
    let spec = parse(json).unwrap();
    assert_eq!(spec.spec.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(spec.spec.strategy.canary().unwrap().steps(), [1, 5, 10, 25, 50]);
}

#[test]
fn a_parsed_spec_serializes_back_to_an_equal_spec() {
    let spec = parse(FULL).unwrap();
    let yaml = serde_json::to_string(&spec).unwrap();
    assert_eq!(parse(&yaml).unwrap(), spec);
}
