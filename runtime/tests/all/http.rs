//! HTTP components: a fresh instance per request, timeouts, failures as 5xx.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use skiff_runtime::{ContainerLog, HttpConfig, LogConfig, LogQuery, WorkloadKind};

use crate::*;

fn request(method: &str, path: &str, body: &'static str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn body_text(response: skiff_runtime::http::HttpResponse) -> (u16, String) {
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_echo_echoes_on_fresh_instances() {
    let t = host();
    let workload = t.host.load(&image("http_echo")).await.unwrap();
    assert_eq!(workload.kind(), WorkloadKind::Http);
    let log = ContainerLog::new(LogConfig::default());
    let service = t
        .host
        .http_service(
            &workload,
            unlimited(),
            spec(&[], &[]),
            log.clone(),
            HttpConfig::default(),
        )
        .unwrap();
    let (status, body) = body_text(
        service
            .handle(request("POST", "/hello?x=1", "hi there"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, "POST /hello?x=1\nhi there");
    let (status, body) = body_text(service.handle(request("GET", "/again", "")).await).await;
    assert_eq!((status, body.as_str()), (200, "GET /again\n"));
    let logged = String::from_utf8_lossy(&log.read(&LogQuery::default())).into_owned();
    assert_eq!(
        logged,
        "http_echo: POST /hello?x=1\nhttp_echo: GET /again\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_answered_504_and_the_service_goes_on() {
    let t = host();
    let workload = t.host.load(&image("http_echo")).await.unwrap();
    let pod = unlimited();
    let service = t
        .host
        .http_service(
            &workload,
            pod.clone(),
            spec(&[], &[]),
            ContainerLog::new(LogConfig::default()),
            HttpConfig {
                max_concurrency: 2,
                request_timeout: Duration::from_millis(300),
            },
        )
        .unwrap();
    let (status, body) = body_text(service.handle(request("GET", "/spin", "")).await).await;
    assert_eq!(status, 504, "{body}");
    let (status, _) = body_text(service.handle(request("GET", "/ok", "")).await).await;
    assert_eq!(status, 200);
    eventually(Duration::from_secs(10), || pod.memory().used() == 0).await;
}

#[tokio::test]
async fn a_command_is_not_served() {
    let t = host();
    let workload = t.host.load(&image("cli_hello")).await.unwrap();
    let err = t
        .host
        .http_service(
            &workload,
            unlimited(),
            spec(&[], &[]),
            ContainerLog::new(LogConfig::default()),
            HttpConfig::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("not an HTTP component"), "{err}");
}
