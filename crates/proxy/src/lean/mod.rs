//! The lean HTTP/1.1 path: plain HTTP/1.1 requests to HTTP/1.1 instances, forwarded by one task per client
//! connection that reads the request, writes it to a pooled instance connection, reads the answer and writes
//! it back, relaying head and body bytes as they came.
//!
//! Why it exists: a proxied request costs the same system calls and TCP segments on any proxy (two reads,
//! two writes, four segments), so what a proxy can save is user-space work. Through hyper a request is parsed
//! into a `HeaderMap`, re-encoded for the instance by a client connection task it is handed to over a
//! channel, and the answer goes the same way back: two header maps, two encodings, two task wake-ups and a
//! timer entry per request. Here the heads are parsed in place (`httparse`), copied with the proxy's edits,
//! and both connections are driven by the same task.
//!
//! What it takes: HTTP/1.1 requests in origin form with a `Host`, no body or a body of known length up to
//! 64 KiB, on services without mirroring whose instances speak HTTP/1.1. Everything else (HTTP/1.0, HTTP/2
//! prior knowledge, upgrades, `Expect`, chunked or large request bodies, gRPC, malformed heads, services not
//! routed or mirrored) is *handed off*: hyper serves the connection from that request on, with the bytes
//! already read replayed first (`Rewind`), so such requests are answered exactly as before. TLS
//! connections never come here.
//!
//! What it keeps: the routing decision (rules, affinity and its cookie, the weighted split), passive health
//! and the retry on another instance when a connection fails, `502`/`504` with the same texts, the request
//! timeout, per-route measurements recorded before the last byte of the answer is handed over, draining.
//! Answers are relayed as the instance framed them (length, chunked, or until close).

mod chunked;
mod connection;
mod deadline;
mod head;
mod pipeline;
mod pipelined;
mod rewind;
mod splitter;

pub(crate) use connection::serve;
pub(crate) use pipeline::Pipes;
