//! Field paths as users read them: `spec.analysis.metrics[1].thresholdRange.max`.

use std::fmt;

/// Where a problem is in a spec document. Kept structured (not a string) so that errors sort by position in the
/// document, with `[2]` before `[10]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct FieldPath(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    /// The document itself.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// A path from map keys only, for the fixed places the cross-field rules look at.
    pub(crate) fn of(keys: &[&str]) -> Self {
        Self(keys.iter().map(|key| Segment::Key((*key).to_owned())).collect())
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Self(segments)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_keys_dotted_and_indexes_bracketed() {
        let path = FieldPath::of(&["spec", "analysis", "metrics"])
            .index(1)
            .key("thresholdRange");
        assert_eq!(path.to_string(), "spec.analysis.metrics[1].thresholdRange");
        assert_eq!(FieldPath::root().to_string(), "");
    }

    #[test]
    fn list_indexes_sort_numerically() {
        let list = FieldPath::of(&["steps"]);
        assert!(list.index(2) < list.index(10));
        assert!(list.index(10).key("a") < list.index(11));
    }
}
