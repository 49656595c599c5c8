//! The admin API's own answers: health, unknown paths, wrong methods, oversized bodies.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::common::*;

#[tokio::test]
async fn admin_answers_health_and_rejects_what_it_does_not_serve() {
    let proxy = start_proxy(None).await;
    let admin = proxy.admin_addr();
    let client = client();

    assert_eq!(get(&client, admin, "/healthz").await, (StatusCode::OK, "ok".to_owned()));

    let (status, body) = get(&client, admin, "/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"error":"no admin endpoint /nope"}"#);

    let request = Request::delete(format!("http://{admin}/routes"))
        .body(Full::default())
        .expect("request");
    let (status, headers, _) = send(&client, request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, PUT");

    let oversized = vec![b' '; 8 * 1024 * 1024 + 1];
    let request = Request::put(format!("http://{admin}/routes"))
        .body(Full::new(Bytes::from(oversized)))
        .expect("request");
    let (status, _, body) = send(&client, request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    proxy.shutdown().await.expect("clean shutdown");
}
