//! Revision identity: what makes two revisions the same.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::service::{ProcessSpec, Readiness, RevisionSpec, ServiceSpec};

/// Identity of a revision: its name and the checksum of its fields.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RevisionRef {
    /// The given name, or `rev-` and the first 8 hex digits of the checksum.
    pub name: String,
    /// See [`RevisionSpec::checksum`].
    pub checksum: String,
}

impl ServiceSpec {
    /// The identity of the revision this spec describes.
    pub fn revision(&self) -> RevisionRef {
        let revision = &self.spec.revision;
        let digest = revision.digest();
        let name = revision
            .name
            .clone()
            .unwrap_or_else(|| format!("rev-{}", hex::encode(&digest[..4])));
        RevisionRef {
            name,
            checksum: hex::encode(&digest[..8]),
        }
    }
}

impl RevisionSpec {
    /// 16 hex digits of a SHA-256 over the revision's fields except `name`, with defaults filled in: the same
    /// whatever the key order, formatting or spelled-out defaults of the YAML; different when anything that
    /// changes what runs changes. Renaming a revision does not make it a new one.
    pub fn checksum(&self) -> String {
        hex::encode(&self.digest()[..8])
    }

    fn digest(&self) -> [u8; 32] {
        let mut canonical = String::new();
        write_canonical(&self.identity(), &mut canonical);
        Sha256::digest(canonical.as_bytes()).into()
    }

    /// Built field by field rather than through serde so it cannot fail; the exhaustive destructuring makes a
    /// new field a compile error here until it is part of the identity.
    fn identity(&self) -> Value {
        let Self { name: _, process } = self;
        let ProcessSpec {
            command,
            env,
            working_dir,
            instances,
            readiness,
        } = process;
        let Readiness { http, timeout } = readiness;
        let env: Map<String, Value> = env
            .iter()
            .map(|(key, value)| (key.clone(), Value::from(value.as_str())))
            .collect();
        let working_dir = working_dir
            .as_ref()
            .map_or(Value::Null, |dir| Value::from(dir.to_string_lossy()));
        let readiness = object([
            ("http", Value::from(http.as_str())),
            ("timeout", Value::from(timeout.to_string())),
        ]);
        let process = object([
            ("command", Value::from(command.clone())),
            ("env", Value::Object(env)),
            ("workingDir", working_dir),
            ("instances", Value::from(*instances)),
            ("readiness", readiness),
        ]);
        object([("process", process)])
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    Value::Object(fields.into_iter().map(|(key, value)| (key.to_owned(), value)).collect())
}

/// Compact JSON with keys sorted at every level. Sorted explicitly because serde_json keeps insertion order
/// when any crate in the build enables its `preserve_order` feature, and checksums must not depend on that.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(fields) => {
            let mut entries: Vec<_> = fields.iter().collect();
            entries.sort_unstable_by(|left, right| left.0.cmp(right.0));
            out.push('{');
            for (position, (key, value)) in entries.into_iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut out = String::new();
        write_canonical(&json!({ "b": [{ "y": 1, "x": "\"" }], "a": null }), &mut out);
        assert_eq!(out, r#"{"a":null,"b":[{"x":"\"","y":1}]}"#);
    }
}
