//! Metric sources that observe revisions; the built-in proxies' admin listeners.
