//! What Sluice tells the outside world: signed webhook calls and notifications. This crate is the I/O adapter
//! only; the engine decides when a hook is called or an event is worth telling, the daemon calls this crate.
//!
//! - [`WebhookClient::call`] POSTs a [`WebhookPayload`] to a spec's [`Webhook`](sluice_spec::Webhook) with its
//!   timeout and retries, signed when the hook has `secretFrom`, and answers a [`HookOutcome`] (2xx = passed).
//! - [`Dispatcher`] delivers fire-and-forget: notifications to [`Alert`](sluice_spec::Alert)s (Slack, Microsoft
//!   Teams, Discord, generic JSON; [`message`] has the bodies) and `event`/`post-rollout` webhooks. Dispatching
//!   never waits on an endpoint; failures are retried, counted and logged without the URL.
//! - [`secret`] reads a [`SecretRef`](sluice_spec::SecretRef) from the daemon's environment or a file.
//! - [`signature`] makes and checks the `X-Sluice-Signature` header.
//!
//! # Verifying a webhook call
//!
//! Every signed call carries `X-Sluice-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. A
//! receiver computes the MAC of the raw body it received with the shared key, and refuses a timestamp far from
//! its own clock, so that a recorded call cannot be replayed:
//!
//! ```
//! use sluice_notify::signature::{self, SignatureError};
//!
//! let key = b"the key in the file or variable that secretFrom names";
//! let body = br#"{"service":"web","revision":"web-2","phase":"Progressing","checksum":"9f2c","type":"pre-rollout","metadata":{}}"#;
//! // What Sluice sent at 1700000000 (unix seconds), as the receiver reads it from the request's headers.
//! let header = signature::sign(key, 1_700_000_000, body);
//!
//! // Received 20 s later: accepted within a 5-minute tolerance.
//! assert_eq!(signature::verify(&header, body, key, 1_700_000_020, 300), Ok(()));
//! // The same request replayed an hour later: refused.
//! assert!(matches!(
//!     signature::verify(&header, body, key, 1_700_003_600, 300),
//!     Err(SignatureError::OutsideTolerance { .. })
//! ));
//! // A body changed on the way: refused.
//! assert_eq!(signature::verify(&header, b"{}", key, 1_700_000_020, 300), Err(SignatureError::Mismatch));
//! ```
//!
//! Outside Rust the check is the same: `hex(hmac_sha256(key, t + "." + body)) == v1`, compared in constant time,
//! and `|now - t| <= tolerance`.

#![warn(missing_docs)]

pub mod dispatch;
pub mod message;
mod post;
pub mod secret;
pub mod signature;
pub mod webhook;

pub use dispatch::{Counters, Delivery, DispatchConfig, Dispatched, Dispatcher};
pub use message::Notification;
pub use secret::{Secret, SecretError};
pub use signature::{SIGNATURE_HEADER, SignatureError, sign, verify};
pub use webhook::{ClientError, HookOutcome, WebhookClient, WebhookPayload};
