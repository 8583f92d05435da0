//! The `/ui/` page's server side, as a browser meets it (the page itself is tested in a
//! real browser by `ui.rs`): its files with their Content-Security-Policy, the descriptor
//! set it decodes with, and IntegrationHistory over gRPC-Web on HTTP/1.1 — answers,
//! errors in gRPC-Web's own shape, and no gRPC-Web anywhere else.

use bytes::{Buf, Bytes};
use erpsync::domain::token::Role;
use erpsync::grpc::pb;
use http_body_util::{BodyExt, Full};
use prost::Message;

use crate::helpers::{spawn_app_with, Backend, TestApp};

/// An HTTP/1.1 answer: status, headers, the whole body.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// One HTTP/1.1 request on a connection of its own, as a browser's fetch would send it.
async fn http1(port: u16, request: http::Request<Full<Bytes>>) -> Answer {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(request).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(port: u16, path: &str) -> Answer {
    let req = http::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Full::default())
        .unwrap();
    http1(port, req).await
}

/// A gRPC-Web call of `method` (`/service/Method`) with `message`, as the page makes it.
async fn grpc_web(port: u16, method: &str, token: Option<&str>, message: &[u8]) -> Answer {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(message);
    let mut req = http::Request::post(method)
        .header("host", "127.0.0.1")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    http1(port, req.body(Full::new(Bytes::from(framed))).unwrap()).await
}

/// A gRPC-Web body's frames: the messages, and the trailers frame's text.
fn frames(mut body: Bytes) -> (Vec<Bytes>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let frame = body.split_to(len);
        if flag & 0x80 != 0 {
            trailers = String::from_utf8(frame.to_vec()).unwrap();
        } else {
            messages.push(frame);
        }
    }
    assert!(body.is_empty(), "a partial frame is left");
    (messages, trailers)
}

async fn the_page_and_its_descriptors_are_served_with_their_policy(app: TestApp) {
    let page = get(app.port, "/ui/").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    let csp = page.header("content-security-policy");
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors https://crm.example.com 'self'",
    ] {
        assert!(csp.contains(rule), "{rule} missing from {csp}");
    }
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert!(String::from_utf8_lossy(&page.body).contains("app.js"));

    let moved = get(app.port, "/ui").await;
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), "/ui/");

    for (path, content_type) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
    ] {
        let file = get(app.port, path).await;
        assert_eq!(file.status, 200, "{path}");
        assert_eq!(file.header("content-type"), content_type, "{path}");
        assert_eq!(file.header("content-security-policy"), csp, "{path}");
    }

    // The descriptors the page builds its messages from: the contract's, imports included.
    let set = get(app.port, "/ui/erpsync.binpb").await;
    assert_eq!(set.status, 200);
    let set = prost_types::FileDescriptorSet::decode(set.body).unwrap();
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    for name in [
        "google/protobuf/timestamp.proto",
        "erpsync/v1/integration_history.proto",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let history = set
        .file
        .iter()
        .flat_map(|f| &f.service)
        .find(|s| s.name() == "IntegrationHistory")
        .expect("IntegrationHistory described");
    assert!(history.method.iter().any(|m| m.name() == "StreamLogs"));

    let missing = get(app.port, "/ui/secrets.txt").await;
    assert_eq!(missing.status, 404);
}

async fn integration_history_answers_grpc_web_over_http1(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let list = "/erpsync.v1.IntegrationHistory/ListTables";

    let answer = grpc_web(app.port, list, Some(&crm), &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), "application/grpc-web+proto");
    let (messages, trailers) = frames(answer.body);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let tables = pb::ListTablesResponse::decode(messages[0].clone()).unwrap();
    assert_eq!(tables.tables.len(), 12, "{tables:?}");

    let request = pb::GetOverviewRequest {
        tenant_id: "acme".into(),
    };
    let answer = grpc_web(
        app.port,
        "/erpsync.v1.IntegrationHistory/GetOverview",
        Some(&crm),
        &request.encode_to_vec(),
    )
    .await;
    let (messages, trailers) = frames(answer.body);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let overview = pb::Overview::decode(messages[0].clone()).unwrap();
    assert_eq!(overview.tenant_id, "acme");

    // Refusals come in gRPC-Web's shape, which a browser's client accepts.
    for (token, code) in [(None, "16"), (Some("esk_nope"), "16")] {
        let answer = grpc_web(app.port, list, token, &[]).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), "application/grpc-web+proto");
        assert_eq!(answer.header("grpc-status"), code);
    }
    let other = app.create_tenant("other").await;
    let elsewhere = app.token(Role::Crm, &[&other]).await;
    let answer = grpc_web(
        app.port,
        "/erpsync.v1.IntegrationHistory/GetOverview",
        Some(&elsewhere),
        &request.encode_to_vec(),
    )
    .await;
    assert_eq!(answer.header("grpc-status"), "7", "PERMISSION_DENIED");
    assert_eq!(answer.header("content-type"), "application/grpc-web+proto");
    let answer = grpc_web(
        app.port,
        "/erpsync.v1.IntegrationHistory/GetOverview",
        Some(&crm),
        &[0xff, 0xff],
    )
    .await;
    assert_eq!(answer.header("grpc-status"), "3", "INVALID_ARGUMENT");
    assert_eq!(answer.header("content-type"), "application/grpc-web+proto");
}

async fn only_integration_history_speaks_grpc_web(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let admin = app.token(Role::Admin, &[]).await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    for (method, token) in [
        ("/erpsync.v1.Admin/ListTenants", &admin),
        ("/erpsync.v1.ErpIngest/Push", &erp),
    ] {
        let answer = grpc_web(app.port, method, Some(token), &[]).await;
        assert_eq!(answer.status, 415, "{method}");
        let body = String::from_utf8_lossy(&answer.body);
        assert!(body.contains("INVALID_ARGUMENT"), "{method}: {body}");
    }
}

crate::both_backends!(
    integration_history_answers_grpc_web_over_http1,
    only_integration_history_speaks_grpc_web
);

/// The page's files do not touch the database: SQLite only, with framing configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_descriptors_are_served_with_the_configured_policy() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.ui_frame_ancestors = "https://crm.example.com 'self'".into();
    })
    .await
    .unwrap();
    the_page_and_its_descriptors_are_served_with_their_policy(app).await;
}
