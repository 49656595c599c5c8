//! `match` rules and session affinity decide the revision before (and instead of) the weighted split.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use sluice_proxy::{MatchRule, SessionAffinity, StringMatch};

use crate::common::*;

fn exact(value: &str) -> StringMatch {
    StringMatch::Exact(value.to_owned())
}

async fn revision_for(client: &TestClient, listen: std::net::SocketAddr, headers: &[(&str, &str)]) -> String {
    let mut request = Request::get(format!("http://{listen}/"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (status, answer, body) = send(client, request.body(Full::<Bytes>::default()).expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    answer["x-backend"].to_str().expect("ascii").to_owned()
}

#[tokio::test]
async fn match_rules_route_as_declared_in_order_before_the_split() {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let listen = free_addr();
    let mut web = service(
        "web",
        listen,
        &[("stable", 100, &[stable.addr]), ("canary", 0, &[canary.addr])],
    );
    web.matches = vec![
        MatchRule {
            name: Some("insiders".into()),
            headers: [("x-canary".to_owned(), exact("always"))].into(),
            cookies: Default::default(),
            revision: "canary".into(),
        },
        MatchRule {
            name: None,
            headers: [("x-canary".to_owned(), exact("never"))].into(),
            cookies: Default::default(),
            revision: "stable".into(),
        },
        MatchRule {
            name: Some("beta-cookie".into()),
            headers: Default::default(),
            cookies: [("beta".to_owned(), StringMatch::Regex("^(yes|1)$".into()))].into(),
            revision: "canary".into(),
        },
        MatchRule {
            name: Some("mobile".into()),
            headers: [("user-agent".to_owned(), StringMatch::Regex("(?i)android|iphone".into()))].into(),
            cookies: Default::default(),
            revision: "canary".into(),
        },
    ];
    let proxy = start_proxy(Some(table(1, vec![web]))).await;
    let client = client();

    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[], "stable"),
        (&[("x-canary", "always")], "canary"),
        (&[("x-canary", "Always")], "stable"),
        (&[("x-canary", "never"), ("cookie", "beta=yes")], "stable"),
        (&[("cookie", "session=1; beta=1")], "canary"),
        (&[("cookie", "beta=no")], "stable"),
        (&[("user-agent", "Mozilla/5.0 (Linux; Android 14)")], "canary"),
        (&[("user-agent", "curl/8")], "stable"),
    ];
    for (headers, expected) in cases {
        assert_eq!(revision_for(&client, listen, headers).await, expected, "{headers:?}");
    }

    let snapshot = snapshot(&client, proxy.admin_addr()).await;
    let routes: HashMap<(String, String), u64> = snapshot
        .revisions
        .iter()
        .flat_map(|r| {
            r.routes
                .iter()
                .map(|route| ((r.revision.clone(), route.route.clone()), route.requests.total()))
        })
        .collect();
    let count = |revision: &str, route: &str| routes.get(&(revision.to_owned(), route.to_owned())).copied();
    assert_eq!(count("canary", "insiders"), Some(1));
    assert_eq!(count("stable", "match-1"), Some(1));
    assert_eq!(count("canary", "beta-cookie"), Some(1));
    assert_eq!(count("canary", "mobile"), Some(1));
    assert_eq!(count("stable", "default"), Some(4));
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn sticky_users_keep_the_candidate_as_it_grows_and_return_to_stable_after_rollback() {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let listen = free_addr();
    let split = |version: u64, canary_weight: u32| {
        let mut web = service(
            "web",
            listen,
            &[
                ("stable", 100 - canary_weight, &[stable.addr]),
                ("canary", canary_weight, &[canary.addr]),
            ],
        );
        web.session_affinity = Some(SessionAffinity::Header("x-user".into()));
        table(version, vec![web])
    };
    let proxy = start_proxy(Some(split(1, 5))).await;
    let admin = proxy.admin_addr();
    let client = client();
    let users: Vec<String> = (0..200).map(|u| format!("user-{u}")).collect();

    let mut on_canary: Vec<bool> = Vec::new();
    for user in &users {
        on_canary.push(revision_for(&client, listen, &[("x-user", user)]).await == "canary");
    }
    for (change, weight) in [8, 10, 15, 20, 25, 30, 35, 40, 45, 50].into_iter().enumerate() {
        let (status, answer) = put_routes(&client, admin, &split(2 + change as u64, weight)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        for (user, was_on_canary) in users.iter().zip(on_canary.iter_mut()) {
            let now = revision_for(&client, listen, &[("x-user", user)]).await == "canary";
            // Twice: the same user gets the same answer on every request.
            let again = revision_for(&client, listen, &[("x-user", user)]).await == "canary";
            assert_eq!(now, again, "{user} at weight {weight}");
            assert!(now || !*was_on_canary, "{user} left the candidate at weight {weight}");
            *was_on_canary = now;
        }
    }
    let share = on_canary.iter().filter(|c| **c).count();
    assert!((60..=140).contains(&share), "{share} of 200 users on a 50% candidate");

    let (status, _) = put_routes(&client, admin, &split(20, 0)).await;
    assert_eq!(status, StatusCode::OK);
    for user in &users {
        assert_eq!(
            revision_for(&client, listen, &[("x-user", user)]).await,
            "stable",
            "{user}"
        );
    }
    proxy.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_cookie_user_gets_a_key_once_and_keeps_its_revision() {
    let stable = TestBackend::start("stable").await;
    let canary = TestBackend::start("canary").await;
    let listen = free_addr();
    let mut web = service(
        "web",
        listen,
        &[("stable", 50, &[stable.addr]), ("canary", 50, &[canary.addr])],
    );
    web.session_affinity = Some(SessionAffinity::CookieName("sluice-user".into()));
    let proxy = start_proxy(Some(table(1, vec![web]))).await;
    let client = client();

    let mut seen = HashMap::new();
    for _ in 0..20 {
        let request = Request::get(format!("http://{listen}/"))
            .body(Full::<Bytes>::default())
            .expect("request");
        let (_, headers, _) = send(&client, request).await;
        let cookie = headers["set-cookie"].to_str().expect("ascii").to_owned();
        assert!(
            cookie.starts_with("sluice-user=") && cookie.contains("Path=/"),
            "{cookie}"
        );
        let pair = cookie.split(';').next().expect("name=value").to_owned();
        let first = headers["x-backend"].to_str().expect("ascii").to_owned();
        for _ in 0..5 {
            let request = Request::get(format!("http://{listen}/"))
                .header("cookie", &pair)
                .body(Full::<Bytes>::default())
                .expect("request");
            let (_, headers, _) = send(&client, request).await;
            assert!(!headers.contains_key("set-cookie"), "a known user gets no new key");
            assert_eq!(headers["x-backend"], first.as_str(), "{pair}");
        }
        *seen.entry(first).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "new users are spread over both revisions: {seen:?}");
    proxy.shutdown().await.expect("clean shutdown");
}
