//! Connection floods, as an unauthenticated attacker would make them: thousands of idle
//! TCP connections, HTTP/2 connections that open no stream but answer pings, and TLS
//! connections that never say hello, all from one address (127.0.0.2, on loopback),
//! while a client from another address (127.0.0.1) must keep being served. And the
//! deadlines that close what the caps let in: the first call, the last call.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use erpsync::config::Config;
use erpsync::domain::token::Role;
use erpsync::grpc::pb;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tonic::codegen::http;

use crate::helpers::{authed, closed_within, TestApp};
use crate::pki::{https_post, Pki};

/// The idle timeout of the server that a pinged connection without a call meets.
const PINGED_IDLE: Duration = Duration::from_millis(300);

/// The address the attacker's connections come from.
const ATTACKER: [u8; 4] = [127, 0, 0, 2];

crate::both_backends!(
    tuned:
    a_flood_from_one_address_locks_no_one_else_out => |c: &mut Config| {
        // The default caps (512 connections, 64 per address); a short first-call
        // deadline so the test sees the attacker's admitted slots come back.
        c.conn.first_call_timeout = Duration::from_secs(1);
    },
    half_open_tls_connections_hold_no_slot_past_the_handshake_deadline => |c: &mut Config| {
        c.tls = Some(PKI.files(false));
        c.conn.handshake_timeout = Duration::from_secs(1);
    },
    a_connection_must_pass_the_edge_with_its_first_call => |c: &mut Config| {
        c.conn.first_call_timeout = Duration::from_millis(300);
    },
    a_connection_with_no_call_open_is_closed_with_goaway_whatever_pings_it_answers => |c: &mut Config| {
        c.conn.idle_timeout = PINGED_IDLE;
        c.request_timeout = Duration::from_millis(200);
        c.limits.body_timeout = Duration::from_millis(100);
        c.log_heartbeat = Duration::from_millis(50);
    },
);

/// The certificates of the TLS test's server and client.
static PKI: std::sync::LazyLock<Pki> = std::sync::LazyLock::new(Pki::new);

/// A TCP connection to the server from `source` (any loopback address).
async fn connect_from(source: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
}

/// An HTTP/2 connection from `source` whose driver runs (and answers the server's pings)
/// in a task; the task ends when the connection does, Ok after a GOAWAY.
async fn h2_from(
    source: [u8; 4],
    port: u16,
) -> Option<(
    h2::client::SendRequest<Bytes>,
    h2::PingPong,
    JoinHandle<Result<(), h2::Error>>,
)> {
    let tcp = connect_from(source, port).await.ok()?;
    let (send, mut connection) = h2::client::handshake(tcp).await.ok()?;
    let pings = connection
        .ping_pong()
        .expect("a new connection's ping handle");
    Some((send, pings, tokio::spawn(connection)))
}

/// One unary gRPC call over a raw HTTP/2 connection, `message` already encoded; the
/// call's grpc-status.
async fn h2_call(
    send: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    token: Option<&str>,
    message: &[u8],
) -> String {
    let mut req = http::Request::post(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let mut ready = send
        .clone()
        .ready()
        .await
        .expect("the connection takes a call");
    let (response, mut body) = ready.send_request(req.body(()).unwrap(), false).unwrap();
    // A gRPC message: uncompressed, its length, the bytes.
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(message);
    // An answer given on the headers alone (a refused token) may close the stream first.
    let _ = body.send_data(Bytes::from(frame), true);
    let response = response.await.expect("an answer");
    if let Some(status) = response.headers().get("grpc-status") {
        return status.to_str().unwrap().to_owned();
    }
    let mut answer = response.into_body();
    while let Some(chunk) = answer.data().await {
        let chunk = chunk.unwrap();
        let _ = answer.flow_control().release_capacity(chunk.len());
    }
    let trailers = answer.trailers().await.unwrap().expect("trailers");
    trailers["grpc-status"].to_str().unwrap().to_owned()
}

/// An empty `grpc.health.v1.HealthCheckRequest` (the server as a whole).
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// Whether the HTTP/2 connection driven by `driver` ended within `bound` after a GOAWAY
/// (h2 ends a connection the server shut down gracefully with Ok).
async fn goaway_within(driver: &mut JoinHandle<Result<(), h2::Error>>, bound: Duration) -> bool {
    match tokio::time::timeout(bound, driver).await {
        Ok(Ok(Ok(()))) => true,
        Ok(Ok(Err(e))) => {
            assert!(
                e.is_go_away() || e.is_io(),
                "the connection ended badly: {e:?}"
            );
            e.is_go_away()
        }
        Ok(Err(join)) => panic!("the connection's driver failed: {join}"),
        Err(_) => false,
    }
}

async fn a_flood_from_one_address_locks_no_one_else_out(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    // 3 000 idle connections and 500 that speak HTTP/2, answer pings and open no stream,
    // all from one address: past the per-address cap each is closed as it is accepted.
    let mut idle = Vec::new();
    for _ in 0..3_000 {
        if let Ok(stream) = connect_from(ATTACKER, app.port).await {
            idle.push(stream);
        }
    }
    let mut pingers = Vec::new();
    for _ in 0..500 {
        if let Some(conn) = h2_from(ATTACKER, app.port).await {
            pingers.push(conn);
        }
    }
    assert!(
        idle.len() >= 3_000 - 64,
        "the attacker could not even connect"
    );
    // The real client keeps being served, each call on a connection of its own.
    for i in 0..20 {
        assert!(
            app.overview_ok("acme", &crm).await,
            "call {i} failed during the flood"
        );
    }
    let counts = app.conn.counts();
    assert!(
        counts.refused_per_address >= 3_000 + 500 - 64,
        "refusals not counted per address: {counts:?}"
    );
    assert_eq!(counts.refused_at_cap, 0, "{counts:?}");
    // The slots the attacker did get are given back at the first-call deadline: every
    // connection of the flood is closed, the HTTP/2 ones with a GOAWAY.
    for stream in &mut idle {
        assert!(closed_within(stream, Duration::from_secs(10)).await);
    }
    for (_, _, driver) in &mut pingers {
        // Ok after a GOAWAY (it held a slot), an error if refused at once.
        let ended = tokio::time::timeout(Duration::from_secs(10), driver).await;
        assert!(
            ended.is_ok(),
            "an HTTP/2 connection of the flood stayed open"
        );
    }
    assert!(app.conn.counts().closed_not_admitted >= 64);
    // And the attacker's address may connect again: its slots came back.
    let (mut send, _pings, _driver) = h2_from(ATTACKER, app.port).await.unwrap();
    assert_eq!(h2_call(&mut send, HEALTH_CHECK, None, &[]).await, "0");
}

async fn half_open_tls_connections_hold_no_slot_past_the_handshake_deadline(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    // 1 000 TCP connections to the TLS port that never send a ClientHello.
    let mut half_open = Vec::new();
    for _ in 0..1_000 {
        if let Ok(stream) = connect_from(ATTACKER, app.port).await {
            half_open.push(stream);
        }
    }
    let body = serde_json::to_vec(&serde_json::json!({
        "records": [{"external_id": "c1", "fields": crate::helpers::seed::valid_fields("company")}]
    }))
    .unwrap();
    let ca = PKI.path("ca.pem");
    for i in 0..10 {
        let answer = https_post(app.port, &ca, None, "/erp/v1/company", &erp, &body)
            .await
            .unwrap_or_else(|e| panic!("push {i} failed during the flood: {e}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "push {i}: {answer}");
    }
    for stream in &mut half_open {
        assert!(closed_within(stream, Duration::from_secs(10)).await);
    }
    let counts = app.conn.counts();
    assert!(counts.handshakes_timed_out >= 1, "{counts:?}");
    assert!(counts.refused_per_address >= 1_000 - 64, "{counts:?}");
}

async fn a_connection_must_pass_the_edge_with_its_first_call(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let overview = {
        use prost::Message;
        pb::GetOverviewRequest {
            tenant_id: "acme".into(),
        }
        .encode_to_vec()
    };
    const OVERVIEW: &str = "/erpsync.v1.IntegrationHistory/GetOverview";
    // Opens no stream: closed with a GOAWAY at the deadline.
    // (Each handle is kept: h2 closes a connection whose handles are all dropped.)
    let (_s0, _p0, mut silent) = h2_from(ATTACKER, app.port).await.unwrap();
    // Calls with a wrong token, and an unknown path: neither admits the connection.
    let (mut send, _p1, mut guessing) = h2_from(ATTACKER, app.port).await.unwrap();
    assert_eq!(
        h2_call(&mut send, OVERVIEW, Some("esk_nope"), &overview).await,
        "16"
    );
    assert_eq!(h2_call(&mut send, "/no.Such/Method", None, &[]).await, "12");
    // A call that passes the edge, and a health check: both keep their connections.
    let (mut send, _p2, caller) = h2_from(ATTACKER, app.port).await.unwrap();
    assert_eq!(
        h2_call(&mut send, OVERVIEW, Some(&crm), &overview).await,
        "0"
    );
    let (mut send, _p3, prober) = h2_from(ATTACKER, app.port).await.unwrap();
    assert_eq!(h2_call(&mut send, HEALTH_CHECK, None, &[]).await, "0");

    assert!(goaway_within(&mut silent, Duration::from_secs(10)).await);
    assert!(goaway_within(&mut guessing, Duration::from_secs(10)).await);
    // A silent connection opened after the admitted ones is closed at its deadline: by
    // then they are past theirs, and still open.
    let (_s4, _p4, mut later) = h2_from(ATTACKER, app.port).await.unwrap();
    assert!(goaway_within(&mut later, Duration::from_secs(10)).await);
    assert!(
        !caller.is_finished(),
        "an authenticated connection was closed"
    );
    assert!(
        !prober.is_finished(),
        "a health-checking connection was closed"
    );
    assert!(app.conn.counts().closed_not_admitted >= 2);
}

async fn a_connection_with_no_call_open_is_closed_with_goaway_whatever_pings_it_answers(
    app: TestApp,
) {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    // One health check, then only pings, every 25 ms: bytes flow both ways, no call.
    let (mut send, mut pings, mut driver) = h2_from([127, 0, 0, 1], app.port).await.unwrap();
    assert_eq!(h2_call(&mut send, HEALTH_CHECK, None, &[]).await, "0");
    let pinging = tokio::spawn(async move {
        while pings.ping(h2::Ping::opaque()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    });
    assert!(
        goaway_within(&mut driver, Duration::from_secs(15)).await,
        "a connection that only answers pings stayed open"
    );
    pinging.abort();
    assert!(app.conn.counts().closed_idle >= 1);

    // A followed log stream is a call: its connection stays open past the idle timeout,
    // three times over (heartbeats every 50 ms keep the bytes flowing too).
    let mut follow = app
        .history()
        .await
        .stream_logs(authed(
            pb::StreamLogsRequest {
                tenant_id: "acme".into(),
                follow: true,
                ..Default::default()
            },
            &crm,
        ))
        .await
        .unwrap()
        .into_inner();
    let until = tokio::time::Instant::now() + PINGED_IDLE * 3;
    let mut beats = 0;
    while tokio::time::Instant::now() < until {
        let item = follow.message().await;
        assert!(
            matches!(item, Ok(Some(_))),
            "the followed stream ended: {item:?}"
        );
        beats += 1;
    }
    assert!(beats > 1);
}
