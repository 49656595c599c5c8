//! Secrets from the daemon's environment and from files; errors that name the source, never the value.

use std::path::PathBuf;

use sluice_notify::secret::{self, SecretError};
use sluice_spec::SecretRef;

/// Set for every test process by cargo and nextest alike, so no test needs to change the environment.
const SET_VARIABLE: &str = "CARGO_PKG_NAME";
const UNSET_VARIABLE: &str = "SLUICE_NOTIFY_TEST_NEVER_SET";

fn env(name: &str) -> SecretRef {
    SecretRef {
        env: Some(name.to_owned()),
        file: None,
    }
}

fn file(path: impl Into<PathBuf>) -> SecretRef {
    SecretRef {
        env: None,
        file: Some(path.into()),
    }
}

#[test]
fn a_secret_from_the_environment_is_its_value() {
    let secret = secret::resolve(&env(SET_VARIABLE)).expect("set by the test runner");
    assert_eq!(secret.expose(), env!("CARGO_PKG_NAME"));
}

#[test]
fn an_unset_variable_is_named_in_the_error() {
    let error = secret::resolve(&env(UNSET_VARIABLE)).expect_err("not set");
    assert_eq!(error.to_string(), format!("env {UNSET_VARIABLE} is not set"));
}

#[test]
fn a_files_one_trailing_newline_is_removed_and_nothing_else() {
    let cases = [
        ("key", "key"),
        ("key\n", "key"),
        ("key\r\n", "key"),
        ("key\n\n", "key\n"),
        (" key with spaces \n", " key with spaces "),
    ];
    let dir = tempfile::tempdir().expect("temporary directory");
    for (content, expected) in cases {
        let path = dir.path().join("key");
        std::fs::write(&path, content).expect("write the key");
        let secret = secret::resolve(&file(&path)).expect("readable");
        assert_eq!(secret.expose(), expected, "content {content:?}");
    }
}

#[tokio::test]
async fn the_async_read_gives_the_same_value() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("url");
    std::fs::write(&path, "http://127.0.0.1:9/hook\n").expect("write");
    let secret = secret::resolve_async(&file(&path)).await.expect("readable");
    assert_eq!(secret.expose(), "http://127.0.0.1:9/hook");
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("missing");
    let error = secret::resolve(&file(&path)).expect_err("missing");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("file {}: No such file", path.display())),
        "{message}"
    );
}

#[test]
fn errors_and_debug_output_never_show_a_value() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").expect("write");
    let error = secret::resolve(&file(&empty)).expect_err("empty");
    assert_eq!(error.to_string(), format!("file {} is empty", empty.display()));

    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, b'k']).expect("write");
    let error = secret::resolve(&file(&binary)).expect_err("not UTF-8");
    assert_eq!(
        error.to_string(),
        format!("file {} is not valid UTF-8", binary.display())
    );

    let secret = secret::resolve(&env(SET_VARIABLE)).expect("set");
    assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
}

#[test]
fn a_reference_needs_exactly_one_source() {
    let neither = SecretRef { env: None, file: None };
    assert!(matches!(
        secret::resolve(&neither),
        Err(SecretError::NotOneSource("neither"))
    ));
    let both = SecretRef {
        env: Some(SET_VARIABLE.to_owned()),
        file: Some("/dev/null".into()),
    };
    assert!(matches!(secret::resolve(&both), Err(SecretError::NotOneSource("both"))));
}

#[test]
fn sources_are_described_for_logs() {
    assert_eq!(secret::describe(&env("SLACK_URL")), "env SLACK_URL");
    assert_eq!(secret::describe(&file("/run/secrets/slack")), "file /run/secrets/slack");
}
