//! `match` rules compiled for the hot path: header names parsed and regexes built once per table.

use http::HeaderMap;
use http::header::{COOKIE, HeaderName};
use regex::Regex;

/// Request headers as routing reads them: hyper's [`HeaderMap`], or the lean path's parsed head, which is
/// routed without building a map.
pub(crate) trait HeaderSource {
    /// Every value of the header `name`, in the order received.
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of the header `name`.
    fn first<'a>(&'a self, name: &'a HeaderName) -> Option<&'a [u8]> {
        self.values(name).next()
    }
}

impl HeaderSource for HeaderMap {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(http::HeaderValue::as_bytes)
    }
}

impl HeaderSource for [httparse::Header<'_>] {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        // `HeaderName`s are lower case; names on the wire may not be.
        self.iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name.as_str()))
            .map(|header| header.value)
    }
}

use crate::routes::{MatchRule, StringMatch};

/// A compiled condition on one value.
#[derive(Debug)]
enum Matcher {
    Exact(String),
    Regex(Regex),
}

impl Matcher {
    fn new(condition: &StringMatch) -> Result<Self, regex::Error> {
        Ok(match condition {
            StringMatch::Exact(value) => Self::Exact(value.clone()),
            StringMatch::Regex(pattern) => Self::Regex(Regex::new(pattern)?),
        })
    }

    fn matches(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(expected) => expected.as_bytes() == value,
            Self::Regex(regex) => std::str::from_utf8(value).is_ok_and(|value| regex.is_match(value)),
        }
    }
}

/// The conditions of one rule; all must hold.
#[derive(Debug)]
pub(crate) struct Conditions {
    headers: Vec<(HeaderName, Matcher)>,
    cookies: Vec<(String, Matcher)>,
}

impl Conditions {
    /// Compiles a validated rule (validation already checked names and patterns).
    pub(crate) fn new(rule: &MatchRule) -> Result<Self, regex::Error> {
        let mut headers = Vec::with_capacity(rule.headers.len());
        for (name, condition) in &rule.headers {
            // Validated names parse; a name that does not is skipped by validation's contract, never here.
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                headers.push((name, Matcher::new(condition)?));
            }
        }
        let cookies = rule
            .cookies
            .iter()
            .map(|(name, condition)| Ok((name.clone(), Matcher::new(condition)?)))
            .collect::<Result<_, regex::Error>>()?;
        Ok(Self { headers, cookies })
    }

    /// Whether every condition holds; a header condition holds if any of the header's values matches.
    pub(crate) fn matches<H: HeaderSource + ?Sized>(&self, headers: &H) -> bool {
        self.headers
            .iter()
            .all(|(name, matcher)| headers.values(name).any(|value| matcher.matches(value)))
            && self
                .cookies
                .iter()
                .all(|(name, matcher)| cookie(headers, name).is_some_and(|value| matcher.matches(value)))
    }
}

/// The value of the first cookie named `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h, H: HeaderSource + ?Sized>(headers: &'h H, name: &str) -> Option<&'h [u8]> {
    headers.values(&COOKIE).find_map(|value| {
        value.split(|b| *b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let position = pair.iter().position(|b| *b == b'=')?;
            let (key, value) = pair.split_at(position);
            (key.trim_ascii() == name.as_bytes()).then(|| value[1..].trim_ascii())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use http::HeaderValue;

    fn rule(headers: &[(&str, StringMatch)], cookies: &[(&str, StringMatch)]) -> Conditions {
        let to_map = |pairs: &[(&str, StringMatch)]| -> BTreeMap<String, StringMatch> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
        };
        Conditions::new(&MatchRule {
            name: None,
            headers: to_map(headers),
            cookies: to_map(cookies),
            revision: "v2".into(),
        })
        .expect("compiles")
    }

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn conditions_must_all_hold() {
        let insiders = rule(
            &[("x-team", StringMatch::Exact("core".into()))],
            &[("beta", StringMatch::Regex("^(yes|1)$".into()))],
        );
        let cases = [
            (vec![("x-team", "core"), ("cookie", "a=b; beta=yes")], true),
            (vec![("x-team", "core"), ("cookie", "beta=1")], true),
            (vec![("x-team", "core"), ("cookie", "beta=no")], false),
            (vec![("x-team", "core")], false),
            (vec![("x-team", "Core"), ("cookie", "beta=yes")], false),
            (
                vec![
                    ("x-team", "other"),
                    ("x-team", "core"),
                    ("cookie", "x=1"),
                    ("cookie", "beta=yes"),
                ],
                true,
            ),
        ];
        for (headers, expected) in cases {
            assert_eq!(insiders.matches(&request(&headers)), expected, "{headers:?}");
        }
    }

    #[test]
    fn an_empty_rule_matches_everything() {
        assert!(rule(&[], &[]).matches(&HeaderMap::new()));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let headers = request(&[("cookie", "session=abc;  sluice-canary = u1 ; x=")]);
        assert_eq!(cookie(&headers, "sluice-canary"), Some(&b"u1"[..]));
        assert_eq!(cookie(&headers, "x"), Some(&b""[..]));
        assert_eq!(cookie(&headers, "sluice"), None);
    }
}
