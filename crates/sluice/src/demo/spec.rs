//! The demo service's spec, one revision at a time. Every revision is released the same way: isolation checks,
//! the shadow stage, then the canary steps; only the revision's command line differs.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How long the isolation stage's load test runs, and the shadow stage, in seconds.
pub const LOAD_TEST_SECS: u64 = 3;
/// How long the shadow stage compares answers.
pub const SHADOW_SECS: u64 = 5;
/// Percent of users' idempotent requests the shadow stage copies.
pub const SHADOW_SHARE: u8 = 25;
/// The canary's steps, in percent of users.
pub const STEPS: [u8; 4] = [5, 10, 25, 50];

/// The spec of the demo service at `revision`, its demo app run with `app_flags` besides the listen address and
/// revision name.
pub fn demo(exe: &Path, listen: SocketAddr, revision: &str, app_flags: &[&str], interval: Duration) -> String {
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let mut command = vec![
        quote(&exe.display().to_string()),
        quote("demo-app"),
        quote("--listen"),
        quote("127.0.0.1:{port}"),
        quote("--revision"),
        quote(revision),
        quote("--latency"),
        quote("2ms"),
    ];
    command.extend(app_flags.iter().map(|flag| quote(flag)));
    let steps = STEPS.map(|step| step.to_string()).join(", ");
    format!(
        r#"apiVersion: sluice.dev/v1alpha1
kind: Service
metadata:
  name: demo
spec:
  listen: {listen}
  revision:
    name: {revision}
    process:
      command: [{command}]
      instances: 2
      readiness: {{ http: /healthz, timeout: 1s }}
  progressDeadline: 30s
  stages:
    isolation:
      smoke:
        - path: /healthz
        - path: /api/items/1
          expectBody: '"currency":"EUR"'
      loadTest:
        requests:
          - path: /api/items/1
          - path: /api/items/2
          - path: /api/items/3
        rate: 50
        duration: {LOAD_TEST_SECS}s
        slo: {{ successRate: 99, p99: 200ms }}
    shadow:
      share: {SHADOW_SHARE}
      duration: {SHADOW_SECS}s
      maxDiffRate: 1
  strategy:
    canary:
      stepWeights: [{steps}]
      interval: {interval}ms
  analysis:
    judge: sequential
    metrics:
      - name: request-success-rate
        thresholdRange: {{ min: 99 }}
      - name: request-duration
        thresholdRange: {{ max: 500 }}
"#,
        command = command.join(", "),
        interval = interval.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_revision_of_the_demo_is_a_valid_spec_with_both_stages() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for flags in [
            &[][..],
            &["--error-rate", "0.1", "--fail-methods", "POST"],
            &["--price-change", "5"],
        ] {
            let text = demo(
                Path::new("/usr/bin/sluice"),
                listen,
                "v3",
                flags,
                Duration::from_secs(5),
            );
            let spec = sluice_spec::parse(&text).unwrap_or_else(|error| panic!("{error:?}\n{text}"));
            let stages = &spec.spec.stages;
            let isolation = stages.isolation.as_ref().expect("an isolation stage");
            assert_eq!(isolation.smoke.len(), 2);
            let shadow = stages.shadow.as_ref().expect("a shadow stage");
            assert_eq!(shadow.share, SHADOW_SHARE);
            assert!(!shadow.methods.iter().any(|m| m == "POST"), "POSTs are not mirrored");
            let command = &spec.spec.revision.process.command;
            assert!(command.ends_with(&flags.iter().map(|f| f.to_string()).collect::<Vec<_>>()));
        }
    }
}
