//! Service specs: types, YAML parsing, validation with field paths, JSON Schema, revision checksums.
