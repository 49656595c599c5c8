//! The built-in data plane: a weighted HTTP reverse proxy with per-revision RED metrics.
