//! The shapes of the strings a spec holds. The schema states them and the error messages recognise them, so
//! both read from here and cannot drift apart.

/// The only `apiVersion` this crate understands.
pub const API_VERSION: &str = "sluice.dev/v1alpha1";

/// The only `kind` this crate understands.
pub const KIND: &str = "Service";

/// Service and revision names end up in process names, metric labels and URLs, so they are DNS labels.
pub(crate) const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The longest DNS label.
pub(crate) const NAME_MAX_LENGTH: u64 = 63;

/// Readiness probes are paths on the instance's own port, never full URLs.
pub(crate) const HTTP_PATH_PATTERN: &str = "^/";

/// An HTTP method token as requests carry it: uppercase letters.
pub(crate) const HTTP_METHOD_PATTERN: &str = "^[A-Z]+$";

/// Webhook and notification endpoints are full URLs over HTTP(S).
pub(crate) const HTTP_URL_PATTERN: &str = "^https?://";

/// An environment variable name the OS can store: `NAME=value` entries end at NUL and split at the first `=`.
pub(crate) const ENV_KEY_PATTERN: &str = "^[^=\u{0}]+$";

/// JSON Schema has no standard format for `ip:port`, so the schema names its own and the validator checks it
/// with the same parser serde uses.
pub(crate) const SOCKET_ADDRESS_FORMAT: &str = "socket-address";

/// The placeholder in a command that is replaced by the port an instance must listen on.
pub const PORT_PLACEHOLDER: &str = "{port}";
