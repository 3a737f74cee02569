//! `http_hello`: a `wasi:http/incoming-handler` (the `http-service` world) — the demo app.
//!
//! For every request it answers `200`, `content-type: text/plain`, body
//! `{$GREETING} from {$POD_NAME}\n` (`hello` and `a pod` when unset) and prints
//! `http_hello: {METHOD} {path}` to stdout. Run behind a Service, the pod names show the
//! load balancing.

use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

impl Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let method = match request.method() {
            Method::Get => "GET".to_string(),
            Method::Head => "HEAD".to_string(),
            Method::Post => "POST".to_string(),
            Method::Put => "PUT".to_string(),
            Method::Delete => "DELETE".to_string(),
            Method::Other(other) => other,
            other => format!("{other:?}").to_uppercase(),
        };
        println!("http_hello: {method} {path}");
        let reply = format!(
            "{} from {}\n",
            env("GREETING", "hello"),
            env("POD_NAME", "a pod")
        );
        let headers = Fields::new();
        let _ = headers.append("content-type", b"text/plain");
        let response = OutgoingResponse::new(headers);
        let _ = response.set_status_code(200);
        let Ok(body) = response.body() else {
            return;
        };
        ResponseOutparam::set(response_out, Ok(response));
        if let Ok(stream) = body.write() {
            let _ = stream.blocking_write_and_flush(reply.as_bytes());
            drop(stream);
        }
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Hello);
