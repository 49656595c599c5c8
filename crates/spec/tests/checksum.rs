//! Revision identity: the checksum follows what runs, not how the YAML is written.

use sluice_spec::{RevisionRef, ServiceSpec, parse};

const MINIMAL: &str = include_str!("fixtures/minimal.yaml");

fn spec(yaml: &str) -> ServiceSpec {
    parse(yaml).unwrap_or_else(|errors| panic!("{errors}\n{yaml}"))
}

fn checksum(yaml: &str) -> String {
    spec(yaml).spec.revision.checksum()
}

fn minimal_with(from: &str, to: &str) -> String {
    assert!(MINIMAL.contains(from), "{from:?} is not in the minimal spec");
    MINIMAL.replacen(from, to, 1)
}

#[test]
fn checksum_is_sixteen_hex_digits_and_pinned() {
    // Pinned: stored revisions are matched by checksum, so its canonical form must not change by accident.
    // This is the SHA-256 of the sorted compact JSON
    // {"process":{"command":["./checkout","--port","{port}"],"env":{},"instances":1,
    //  "readiness":{"http":"/","timeout":"2s"},"workingDir":null}}
    assert_eq!(checksum(MINIMAL), "947fde6f99291844");
}

#[test]
fn checksum_ignores_key_order_formatting_and_spelled_out_defaults() {
    let reordered_json = r#"{"spec": {"strategy": {"canary": {"stepWeight": 10}},
        "revision": {"process": {"readiness": {"timeout": "2000ms", "http": "/"}, "instances": 1, "env": {},
                                 "command": ["./checkout", "--port", "{port}"]}},
        "listen": "127.0.0.1:8080"},
        "metadata": {"name": "checkout"}, "kind": "Service", "apiVersion": "sluice.dev/v1alpha1"}"#;
    assert_eq!(checksum(reordered_json), checksum(MINIMAL));
}

#[test]
fn checksum_changes_with_every_field_that_changes_what_runs() {
    let variants = [
        minimal_with(r#""--port", "{port}""#, r#""--port={port}""#),
        minimal_with("      command:", "      env: { RUST_LOG: debug }\n      command:"),
        minimal_with("      command:", "      env: { RUST_LOG: info }\n      command:"),
        minimal_with("      command:", "      workingDir: /srv\n      command:"),
        minimal_with("      command:", "      instances: 2\n      command:"),
        minimal_with("      command:", "      readiness: { http: /healthz }\n      command:"),
        minimal_with("      command:", "      readiness: { timeout: 3s }\n      command:"),
    ];
    let mut checksums: Vec<String> = variants.iter().map(|yaml| checksum(yaml)).collect();
    checksums.push(checksum(MINIMAL));
    let count = checksums.len();
    checksums.sort();
    checksums.dedup();
    assert_eq!(checksums.len(), count, "two different revisions share a checksum");
}

#[test]
fn checksum_ignores_the_revision_name_and_what_lies_outside_the_revision() {
    let named = minimal_with("    process:", "    name: v42\n    process:");
    let elsewhere = minimal_with("stepWeight: 10", "stepWeight: 20");
    assert_eq!(checksum(&named), checksum(MINIMAL));
    assert_eq!(checksum(&elsewhere), checksum(MINIMAL));
}

#[test]
fn revision_is_named_as_given_or_after_its_checksum() {
    let unnamed = spec(MINIMAL);
    let checksum = unnamed.spec.revision.checksum();
    assert_eq!(
        unnamed.revision(),
        RevisionRef {
            name: format!("rev-{}", &checksum[..8]),
            checksum: checksum.clone()
        }
    );

    let named = spec(&minimal_with("    process:", "    name: v42\n    process:"));
    assert_eq!(
        named.revision(),
        RevisionRef {
            name: "v42".to_owned(),
            checksum
        }
    );
}
