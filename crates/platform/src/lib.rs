//! Platforms that run revisions; the local-process platform of the embedded default.
