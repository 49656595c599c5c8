//! A static routes file in YAML, for running the data plane alone (`sluice proxy --config FILE`).
//!
//! The file is a [`RouteTable`] written in YAML with the same camelCase field names as the JSON pushed to
//! `PUT /routes`:
//!
//! ```yaml
//! version: 1
//! services:
//!   - name: web
//!     listen: 127.0.0.1:8080
//!     backends:
//!       - { revision: stable, weight: 90, instances: ["127.0.0.1:9001"] }
//!       - { revision: canary, weight: 10, instances: ["127.0.0.1:9002"] }
//!     match:
//!       - { name: insiders, headers: { x-canary: { exact: always } }, revision: canary }
//!     pipelineDepth: 8   # optional: pipeline up to 8 quick GETs per instance connection
//! ```

use std::path::{Path, PathBuf};

use crate::routes::{RouteTable, TableError};

/// Why a routes file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read the routes file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a route table in YAML.
    #[error("the routes file {} is not a route table: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with its position.
        message: String,
    },
    /// The table fails validation.
    #[error("the routes file {} is invalid: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: TableError,
    },
}

/// Reads, parses and validates a routes file.
pub fn load_routes_file(path: &Path) -> Result<RouteTable, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<RouteTable, ConfigFileError> {
    let table: RouteTable = serde_saphyr::from_str(text).map_err(|error| ConfigFileError::Parse {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    table.validate().map_err(|source| ConfigFileError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::{SessionAffinity, StringMatch};

    #[test]
    fn the_documented_example_parses() {
        let text = r#"
version: 1
services:
  - name: web
    listen: 127.0.0.1:8080
    backends:
      - { revision: stable, weight: 90, instances: ["127.0.0.1:9001"] }
      - { revision: canary, weight: 10, instances: ["127.0.0.1:9002"] }
    match:
      - { name: insiders, headers: { x-canary: { exact: always } }, revision: canary }
    sessionAffinity: { cookieName: sluice-canary }
"#;
        let table = parse(Path::new("routes.yaml"), text).expect("parses");
        let web = &table.services[0];
        assert_eq!(web.backends[1].weight, 10);
        assert_eq!(web.matches[0].headers["x-canary"], StringMatch::Exact("always".into()));
        assert_eq!(
            web.session_affinity,
            Some(SessionAffinity::CookieName("sluice-canary".into()))
        );
    }

    #[test]
    fn the_benchmark_routes_files_load_and_differ_only_in_pipelining() {
        let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/dataplane");
        let pipelined = load_routes_file(&bench.join("routes.yaml")).expect("routes.yaml loads");
        let mut unpipelined = load_routes_file(&bench.join("routes-unpipelined.yaml")).expect("loads");
        assert_eq!(pipelined.services[0].pipeline_depth, 32);
        assert_eq!(unpipelined.services[0].pipeline_depth, 1);
        unpipelined.services[0].pipeline_depth = 32;
        assert_eq!(pipelined, unpipelined);
    }

    #[test]
    fn errors_name_the_file() {
        let error = parse(Path::new("r.yaml"), "version: one").expect_err("not a number");
        assert!(
            error
                .to_string()
                .starts_with("the routes file r.yaml is not a route table"),
            "{error}"
        );
        let invalid = "version: 1\nservices:\n  - { name: a, listen: 127.0.0.1:0, backends: [] }\n";
        let error = parse(Path::new("r.yaml"), invalid).expect_err("port 0");
        assert!(error.to_string().contains("port 0 is not allowed"), "{error}");
    }
}
