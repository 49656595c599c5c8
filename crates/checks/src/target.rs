//! Where checks are sent: one address, reached over plain HTTP/1.1, optionally under another name.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use http::Uri;

/// The address checks go to: a candidate's instance (`http://127.0.0.1:PORT`) or a blue/green preview
/// address, plus the `Host` header to send when the revision expects a name rather than an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    addr: SocketAddr,
    host: Option<String>,
}

/// A base URL that is not `http://IP:PORT`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("check target {url:?} must look like http://127.0.0.1:8080: {problem}")]
pub struct TargetError {
    /// The rejected text.
    pub url: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl Target {
    /// Checks sent straight to `addr`, with the `Host` header the address gives.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, host: None }
    }

    /// Parses a base URL, `http://IP:PORT` with an optional trailing `/`. Names are refused rather than resolved:
    /// the platform hands out addresses, and a check that silently went to whatever a name resolves to today
    /// would test the wrong thing.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let error = |problem| TargetError {
            url: url.to_owned(),
            problem,
        };
        let uri: Uri = url.parse().map_err(|_| error("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(error("the scheme must be http"));
        }
        if !matches!(uri.path_and_query().map(|p| p.as_str()), None | Some("/")) {
            return Err(error("a base URL has no path or query; checks give their own"));
        }
        let authority = uri.authority().ok_or_else(|| error("no address"))?;
        let addr = authority
            .as_str()
            .parse()
            .map_err(|_| error("the address must be an IP address and a port"))?;
        Ok(Self::new(addr))
    }

    /// The same target, with `Host: host` on every request that does not set its own.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The address requests go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Host` header requests carry when they do not set their own.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Self::parse(url)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.addr)?;
        match &self.host {
            Some(host) => write!(f, " (Host: {host})"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_with_an_ip_and_a_port_are_targets() {
        for url in ["http://127.0.0.1:8080", "http://127.0.0.1:8080/", "http://[::1]:9000"] {
            let target = Target::parse(url).unwrap();
            assert_eq!(target.addr().port(), if url.contains("9000") { 9000 } else { 8080 });
            assert_eq!(target.host(), None);
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let check = |url: &str, reason: &str| {
            let error = Target::parse(url).unwrap_err().to_string();
            assert!(error.contains(reason) && error.contains(url), "{url}: {error}");
        };
        check("https://127.0.0.1:8443", "the scheme must be http");
        check("127.0.0.1:8080", "the scheme must be http");
        check("http://localhost:8080", "IP address and a port");
        check("http://127.0.0.1", "IP address and a port");
        check("http://127.0.0.1:8080/api", "no path");
        check("http://127.0.0.1:8080/?x=1", "no path");
        check("not a url", "not a URL");
    }

    #[test]
    fn the_host_shows_in_the_display() {
        let target = Target::parse("http://10.0.0.1:80")
            .unwrap()
            .with_host("preview.example");
        assert_eq!(target.to_string(), "http://10.0.0.1:80 (Host: preview.example)");
    }
}
