//! Integration tests: real loopback servers.
