//! Secrets named by a [`SecretRef`]: read when needed from the daemon's environment or a file, so they are never
//! in a spec or the database. Errors and logs name where a secret comes from, never what it is.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use sluice_spec::SecretRef;
use thiserror::Error;

/// A secret's value. Its `Debug` output is redacted so that it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself; call this only where it is used (an HMAC key, a URL to send to).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret that could not be read. The message names the source (`env HOOK_KEY`, `file /run/key`), never a value.
#[derive(Debug, Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("env {name} is not set")]
    EnvNotSet {
        /// The variable's name.
        name: String,
    },
    /// The environment variable's value is not UTF-8.
    #[error("env {name} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable's name.
        name: String,
    },
    /// The file could not be read.
    #[error("file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: io::Error,
    },
    /// The file's content is not UTF-8.
    #[error("file {} is not valid UTF-8", path.display())]
    FileNotUnicode {
        /// The file.
        path: PathBuf,
    },
    /// The source holds an empty value, which would make a useless key or URL.
    #[error("{from} is empty")]
    Empty {
        /// Where the value was read from: `env NAME` or `file PATH`.
        from: String,
    },
    /// The reference names neither an environment variable nor a file (the spec's validation rejects this).
    #[error("a secret reference needs exactly one of env and file, it has {0}")]
    NotOneSource(&'static str),
}

/// Reads the secret now, from the process environment or the file. A file's one trailing newline (`\n` or `\r\n`)
/// is removed, since editors and `echo` add one; nothing else is trimmed.
pub fn resolve(secret: &SecretRef) -> Result<Secret, SecretError> {
    match (&secret.env, &secret.file) {
        (Some(name), None) => from_env(name),
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|source| SecretError::File {
                path: path.clone(),
                source,
            })?;
            from_file_content(path, bytes)
        }
        (None, None) => Err(SecretError::NotOneSource("neither")),
        (Some(_), Some(_)) => Err(SecretError::NotOneSource("both")),
    }
}

/// [`resolve`] for async code: the file is read without blocking a runtime thread.
pub async fn resolve_async(secret: &SecretRef) -> Result<Secret, SecretError> {
    match (&secret.env, &secret.file) {
        (None, Some(path)) => {
            let bytes = tokio::fs::read(path).await.map_err(|source| SecretError::File {
                path: path.clone(),
                source,
            })?;
            from_file_content(path, bytes)
        }
        _ => resolve(secret),
    }
}

/// Where a secret comes from, for logs and messages: `env HOOK_KEY` or `file /run/key`.
pub fn describe(secret: &SecretRef) -> String {
    match (&secret.env, &secret.file) {
        (Some(name), None) => format!("env {name}"),
        (None, Some(path)) => format!("file {}", path.display()),
        (None, None) => "no source".to_owned(),
        (Some(name), Some(path)) => format!("env {name} and file {}", path.display()),
    }
}

fn from_env(name: &str) -> Result<Secret, SecretError> {
    let value = std::env::var(name).map_err(|error| match error {
        std::env::VarError::NotPresent => SecretError::EnvNotSet { name: name.to_owned() },
        std::env::VarError::NotUnicode(_) => SecretError::EnvNotUnicode { name: name.to_owned() },
    })?;
    non_empty(value, || format!("env {name}"))
}

fn from_file_content(path: &Path, bytes: Vec<u8>) -> Result<Secret, SecretError> {
    let mut value = String::from_utf8(bytes).map_err(|_| SecretError::FileNotUnicode { path: path.to_owned() })?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    non_empty(value, || format!("file {}", path.display()))
}

fn non_empty(value: String, from: impl FnOnce() -> String) -> Result<Secret, SecretError> {
    if value.is_empty() {
        Err(SecretError::Empty { from: from() })
    } else {
        Ok(Secret(value))
    }
}
