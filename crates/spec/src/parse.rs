//! `parse`: from YAML text to a validated spec, or every problem in it.

use crate::errors::{Problem, SpecErrors};
use crate::path::FieldPath;
use crate::service::ServiceSpec;
use crate::{rules, schema, yaml};

/// Parses and fully validates a service spec written in YAML (or JSON). On failure, every problem is
/// reported at once, each with the path of its field; a YAML syntax error is reported alone.
pub fn parse(text: &str) -> Result<ServiceSpec, SpecErrors> {
    let document = yaml::load(text).map_err(|problem| SpecErrors::from_problems(vec![problem]))?;
    let mut problems = schema::validate(&document);
    problems.extend(rules::check(&document));
    if !problems.is_empty() {
        return Err(SpecErrors::from_problems(problems));
    }
    serde_json::from_value(document).map_err(|error| {
        SpecErrors::from_problems(vec![Problem::new(
            FieldPath::root(),
            format!("internal error: the spec passed validation but does not deserialize: {error}"),
        )])
    })
}
