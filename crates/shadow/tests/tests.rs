//! Integration tests: the shadow listener between real loopback servers, as the proxy's mirror would use it.

mod instance;
mod shadow;
