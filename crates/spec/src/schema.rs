//! The JSON Schema of the spec, generated from the Rust types, and the validator built from it.

use std::net::SocketAddr;
use std::sync::LazyLock;

use jsonschema::Validator;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::errors::Problem;
use crate::messages;
use crate::path::FieldPath;
use crate::service::ServiceSpec;
use crate::syntax::SOCKET_ADDRESS_FORMAT;

/// The JSON Schema (draft 2020-12) of a service spec document, for editors and other tools.
///
/// Subschemas are inlined rather than referenced through `$defs`: a failing keyword's location is then a plain
/// pointer into this document, which is what error messages are built from.
pub fn json_schema() -> Value {
    SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<ServiceSpec>()
        .to_value()
}

struct CompiledSchema {
    schema: Value,
    validator: Result<Validator, String>,
}

/// Built once: compiling the schema costs far more than validating a document.
static COMPILED: LazyLock<CompiledSchema> = LazyLock::new(|| {
    let schema = json_schema();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .with_format(SOCKET_ADDRESS_FORMAT, |text: &str| text.parse::<SocketAddr>().is_ok())
        .build(&schema)
        .map_err(|error| error.to_string());
    CompiledSchema { schema, validator }
});

/// Every schema violation in the document: unknown and missing fields, wrong types, out-of-range values.
pub(crate) fn validate(document: &Value) -> Vec<Problem> {
    let compiled = &*COMPILED;
    match &compiled.validator {
        Ok(validator) => validator
            .iter_errors(document)
            .flat_map(|error| messages::describe(&error, &compiled.schema, document))
            .collect(),
        Err(error) => vec![Problem::new(
            FieldPath::root(),
            format!("internal error: the spec's JSON Schema does not compile: {error}"),
        )],
    }
}
