//! The demo service's spec, one revision at a time.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The spec of the demo service at `revision`, failing `error_rate` of its requests.
pub fn demo(exe: &Path, listen: SocketAddr, revision: &str, error_rate: f64, interval: Duration) -> String {
    let exe = serde_json::to_string(&exe.display().to_string()).unwrap_or_default();
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
      command: [{exe}, "demo-app", "--listen", "127.0.0.1:{{port}}", "--revision", "{revision}", "--error-rate", "{error_rate}", "--latency", "2ms"]
      instances: 2
      readiness: {{ http: /healthz, timeout: 1s }}
  progressDeadline: 30s
  strategy:
    canary:
      stepWeights: [5, 10, 25, 50]
      interval: {interval}ms
  analysis:
    judge: sequential
    metrics:
      - name: request-success-rate
        thresholdRange: {{ min: 99 }}
      - name: request-duration
        thresholdRange: {{ max: 500 }}
"#,
        interval = interval.as_millis()
    )
}
