//! From the spec's requests to the load generator's templates, which both kinds of check send.

use bytes::Bytes;
use http::Method;
use http::header::HOST;
use sluice_demo::load::RequestTemplate;
use sluice_spec::HttpRequest;

use crate::Target;

/// A spec request that cannot be sent as written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("method {method:?} is not a valid HTTP method")]
pub(crate) struct InvalidMethod {
    method: String,
}

/// The template for `request` at `target`: the target's `Host` is added unless the request sets its own.
pub(crate) fn template(request: &HttpRequest, target: &Target) -> Result<RequestTemplate, InvalidMethod> {
    let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| InvalidMethod {
        method: request.method.clone(),
    })?;
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if let Some(host) = target.host()
        && !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(HOST.as_str()))
    {
        headers.push((HOST.as_str().to_owned(), host.to_owned()));
    }
    Ok(RequestTemplate {
        method,
        path: request.path.clone(),
        headers,
        body: request.body.clone().map(Bytes::from).unwrap_or_default(),
    })
}

/// How a request is named in reasons: `GET /healthz`.
pub(crate) fn describe(request: &HttpRequest) -> String {
    format!("{} {}", request.method, request.path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn request(headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            path: "/orders".into(),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect::<BTreeMap<_, _>>(),
            body: Some("{}".into()),
        }
    }

    #[test]
    fn the_target_host_is_added_unless_the_request_has_one() {
        let target = Target::parse("http://127.0.0.1:8080").unwrap().with_host("preview");
        let added = template(&request(&[("x-a", "1")]), &target).unwrap();
        assert_eq!(
            added.headers,
            [("x-a".into(), "1".into()), ("host".into(), "preview".into())]
        );
        assert_eq!((added.method, &added.body[..]), (Method::POST, &b"{}"[..]));

        let own = template(&request(&[("Host", "mine")]), &target).unwrap();
        assert_eq!(own.headers, [("Host".into(), "mine".into())]);
    }

    #[test]
    fn a_method_that_is_no_token_is_refused() {
        let mut bad = request(&[]);
        bad.method = "GE T".into();
        let error = template(&bad, &Target::parse("http://127.0.0.1:1").unwrap()).unwrap_err();
        assert_eq!(error.to_string(), "method \"GE T\" is not a valid HTTP method");
    }
}
