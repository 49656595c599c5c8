//! A restarted proxy serves the last pushed table from its state file, with no daemon around.

use http::StatusCode;
use sluice_proxy::{ProxyConfig, admin_address_path};

use crate::common::*;

#[tokio::test]
async fn a_restarted_proxy_serves_the_pushed_routes_from_its_state_file() {
    let backend = TestBackend::start("pushed").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("routes.json");
    let config = ProxyConfig {
        admin: "127.0.0.1:0".parse().expect("admin address"),
        state_file: Some(state_file.clone()),
        initial: Some(table(1, vec![])),
        workers: None,
    };
    let client = client();

    let first = sluice_proxy::start(config.clone()).await.expect("first proxy starts");
    let admin_file = admin_address_path(&state_file);
    assert_eq!(
        std::fs::read_to_string(&admin_file).expect("admin address file"),
        format!("{}\n", first.admin_addr())
    );
    let listen = free_addr();
    let pushed = table(7, vec![service("web", listen, &[("v1", 100, &[backend.addr])])]);
    let (status, _) = put_routes(&client, first.admin_addr(), &pushed).await;
    assert_eq!(status, StatusCode::OK);
    first.shutdown().await.expect("first proxy stops");

    let second = sluice_proxy::start(config).await.expect("second proxy starts");
    assert_eq!(get(&client, listen, "/").await, (StatusCode::OK, "pushed".to_owned()));
    assert_eq!(get_routes(&client, second.admin_addr()).await, pushed);
    assert_eq!(
        std::fs::read_to_string(&admin_file).expect("admin address file"),
        format!("{}\n", second.admin_addr())
    );
    second.shutdown().await.expect("second proxy stops");
}

#[tokio::test]
async fn a_corrupt_state_file_falls_back_to_the_initial_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_file = dir.path().join("routes.json");
    std::fs::write(&state_file, "not json").expect("write");
    let proxy = sluice_proxy::start(ProxyConfig {
        admin: "127.0.0.1:0".parse().expect("admin address"),
        state_file: Some(state_file),
        initial: Some(table(3, vec![])),
        workers: None,
    })
    .await
    .expect("proxy starts");
    assert_eq!(get_routes(&client(), proxy.admin_addr()).await.version, 3);
    proxy.shutdown().await.expect("clean shutdown");
}
