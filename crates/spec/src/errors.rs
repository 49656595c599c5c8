//! What `parse` reports: every problem in a spec, each with the field it is about.

use std::fmt;

use thiserror::Error;

use crate::path::FieldPath;

/// One problem in a spec document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldError {
    /// Dotted path of the field, `[i]` for list elements; empty when the problem is the document as a whole
    /// (a YAML syntax error, a document that is not a map).
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a spec document, sorted by field path, without duplicates.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{}", render_lines(errors))]
pub struct SpecErrors {
    /// The problems, in document order of their paths.
    pub errors: Vec<FieldError>,
}

fn render_lines(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// A problem found while checking, before paths are flattened to strings.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Problem {
    pub(crate) path: FieldPath,
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn new(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
        }
    }
}

impl SpecErrors {
    /// Sorts by structured path (so `[2]` comes before `[10]`) and drops repeats: the schema and the
    /// cross-field rules may both notice the same problem.
    pub(crate) fn from_problems(mut problems: Vec<Problem>) -> Self {
        problems.sort();
        problems.dedup();
        let errors = problems
            .into_iter()
            .map(|problem| FieldError {
                path: problem.path.to_string(),
                message: problem.message,
            })
            .collect();
        Self { errors }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_line_per_problem_sorted_and_deduplicated() {
        let errors = SpecErrors::from_problems(vec![
            Problem::new(FieldPath::of(&["spec", "listen"]), "bad"),
            Problem::new(FieldPath::root(), "line 1 column 2: oops"),
            Problem::new(FieldPath::of(&["kind"]), "wrong"),
            Problem::new(FieldPath::of(&["spec", "listen"]), "bad"),
        ]);
        assert_eq!(
            errors.to_string(),
            "line 1 column 2: oops\nkind: wrong\nspec.listen: bad"
        );
    }
}
