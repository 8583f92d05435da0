//! The HTTP route's OpenAPI document (`GET /erp/v1/openapi.json`), held to the server's
//! real answers: every answer a test can provoke has its status declared for the path,
//! its body matches the declared schema exactly (no property missing, none undeclared),
//! its declared headers are there, and the `{table}` enum is the catalog ListTables serves.

use std::time::Duration;

use erpsync::domain::token::Role;
use erpsync::grpc::pb::ListTablesRequest;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::helpers::seed::valid_fields;
use crate::helpers::{authed, closed_within, spawn_app_with, TestApp};

both_backends!(
    the_openapi_document_describes_every_answer_the_http_route_gives,
    the_openapi_document_needs_no_token_and_keeps_its_connection,
);

const PUSH_PATH: &str = "/erp/v1/{table}";

async fn the_openapi_document_describes_every_answer_the_http_route_gives(app: TestApp) {
    // Small limits make 413, 408 and 429 cheap to reach: a server of the same backend.
    let backend = app.backend;
    drop(app);
    let app = spawn_app_with(backend, |c| {
        c.limits.max_body_bytes = 4096;
        c.limits.body_timeout = Duration::from_secs(1);
        c.rate_limits.pushes_per_sec = 1;
    })
    .await
    .unwrap();
    let (status, head, body) = call(app.port, "GET", "/erp/v1/openapi.json", None, b"").await;
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(
        body,
        erpsync::http::OPENAPI_JSON,
        "the committed document is served"
    );
    let doc: Value = serde_json::from_str(&body).expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");

    // The `{table}` enum is the catalog, in the catalog's order.
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let served: Vec<String> = app
        .history()
        .await
        .list_tables(authed(ListTablesRequest::default(), &crm))
        .await
        .unwrap()
        .into_inner()
        .tables
        .into_iter()
        .map(|t| t.id)
        .collect();
    let params = doc["paths"][PUSH_PATH]["post"]["parameters"]
        .as_array()
        .unwrap();
    let table = params.iter().find(|p| p["name"] == "table").unwrap();
    let declared: Vec<&str> = table["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(declared, served, "the {{table}} enum is ListTables' tables");

    // A token per provocation: the push rate is per token.
    let mut erps = Vec::new();
    for _ in 0..8 {
        erps.push(app.token(Role::Erp, &[&tenant]).await);
    }
    let mut erps = erps.into_iter();
    let mut erp = || erps.next().expect("enough erp tokens");
    let mut seen = Vec::new();
    let mut answered = |what: &str, (status, head, body): (u16, String, String)| {
        let request = if status == 200 { "request" } else { "error" };
        check_answer(&doc, status, &head, &body).unwrap_or_else(|e| {
            panic!("{what}: the {request} answer {status} does not match the document: {e}\n{head}\n{body}")
        });
        seen.push(status);
        body
    };

    // 200, with one record rejected and one kept; the request body matches its schema too.
    let batch = json!({"records": [
        {"external_id": "c1", "fields": valid_fields("company")},
        {"external_id": "c2", "fields": {}},
    ]});
    let request_schema =
        &doc["paths"][PUSH_PATH]["post"]["requestBody"]["content"]["application/json"]["schema"];
    check(&doc, request_schema, &batch, "request").unwrap();
    let body = answered(
        "a batch with a bad record",
        call(
            app.port,
            "POST",
            "/erp/v1/company",
            Some(&erp()),
            batch.to_string().as_bytes(),
        )
        .await,
    );
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["accepted"], 1, "{reply}");
    assert_eq!(reply["rejected"][0]["index"], 1, "{reply}");

    answered(
        "malformed JSON",
        call(
            app.port,
            "POST",
            "/erp/v1/company",
            Some(&erp()),
            b"{\"records\": [",
        )
        .await,
    );
    answered(
        "no token",
        call(
            app.port,
            "POST",
            "/erp/v1/company",
            None,
            batch.to_string().as_bytes(),
        )
        .await,
    );
    answered(
        "a crm token",
        call(
            app.port,
            "POST",
            "/erp/v1/company",
            Some(&crm),
            batch.to_string().as_bytes(),
        )
        .await,
    );
    let body = answered(
        "an unknown table",
        call(
            app.port,
            "POST",
            "/erp/v1/nope",
            Some(&erp()),
            batch.to_string().as_bytes(),
        )
        .await,
    );
    assert!(
        body.contains("request_id"),
        "a logged failure names its entry: {body}"
    );
    answered(
        "GET on the push route",
        call(app.port, "GET", "/erp/v1/company", Some(&erp()), b"").await,
    );
    let big = json!({"records": [{"external_id": "x", "fields": {"name": "y".repeat(5000)}}]});
    answered(
        "a body over max_body_bytes",
        call(
            app.port,
            "POST",
            "/erp/v1/company",
            Some(&erp()),
            big.to_string().as_bytes(),
        )
        .await,
    );
    answered("a body that never arrives", trickle(app.port, &erp()).await);
    let hurried = erp();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = call(
            app.port,
            "POST",
            "/erp/v1/company",
            Some(&hurried),
            batch.to_string().as_bytes(),
        )
        .await;
        statuses.push(answer.0);
        if answer.0 == 429 {
            answered("pushes over pushes_per_sec", answer);
            break;
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        [200, 400, 401, 403, 404, 405, 408, 413, 429],
        "every status a test can provoke was provoked (pushes: {statuses:?})"
    );
}

async fn the_openapi_document_needs_no_token_and_keeps_its_connection(app: TestApp) {
    // One connection, kept alive: fetching the document admits it, so the server does not
    // close it at the first-call deadline as it does a connection that never called.
    let backend = app.backend;
    drop(app);
    let app = spawn_app_with(backend, |c| {
        c.conn.first_call_timeout = Duration::from_millis(200);
    })
    .await
    .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let get = b"GET /erp/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(get).await.unwrap();
    let first = read_one_answer(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // A connection opened after it that never calls is closed at the deadline: by then
    // the first connection is past its own.
    let mut control = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    assert!(
        closed_within(&mut control, Duration::from_secs(10)).await,
        "a connection that never called stayed open"
    );
    s.write_all(get).await.unwrap();
    let second = read_one_answer(&mut s).await;
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the connection was kept: {second}"
    );

    // Any other method is a 405 in the JSON error shape, still without a token.
    let (status, head, body) = call(app.port, "POST", "/erp/v1/openapi.json", None, b"{}").await;
    assert_eq!(status, 405, "{head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "INVALID_ARGUMENT", "{body}");
}

/// One whole answer (head and `Content-Length` body) read off a kept-alive connection.
async fn read_one_answer(s: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the server answers")
            .unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = header(head, "content-length").and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|l| body.len() >= l) {
                break;
            }
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// A raw HTTP/1.1 request with `Connection: close`; returns status, head and body.
async fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{auth}\r\n",
        body.len()
    );
    let (mut reader, mut writer) = stream.split();
    let send = async {
        // The server may answer (413) before reading a large body: a failed write is fine.
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(body).await;
    };
    let mut raw = Vec::new();
    let ((), read) = tokio::join!(send, reader.read_to_end(&mut raw));
    read.unwrap();
    split_answer(&raw)
}

/// A push whose declared body never arrives: answered at the body deadline.
async fn trickle(port: u16, token: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /erp/v1/company HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let answer = read_one_answer(&mut s).await;
    split_answer(answer.as_bytes())
}

fn split_answer(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

/// The value of header `name` in an answer's `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Whether an answer of the push route is what the document declares for `status`: the
/// status is declared, the content type is the declared one, the body matches its schema
/// and the headers the document requires are there.
fn check_answer(doc: &Value, status: u16, head: &str, body: &str) -> Result<(), String> {
    let declared = &doc["paths"][PUSH_PATH]["post"]["responses"][status.to_string()];
    if declared.is_null() {
        return Err(format!(
            "status {status} is not declared for POST {PUSH_PATH}"
        ));
    }
    let content = declared["content"]
        .as_object()
        .ok_or("no content declared")?;
    let content_type = header(head, "content-type").ok_or("no Content-Type")?;
    let schema = content
        .get(content_type)
        .map(|c| &c["schema"])
        .ok_or_else(|| format!("content type {content_type} is not declared"))?;
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    check(doc, schema, &value, "body")?;
    for (name, spec) in declared["headers"].as_object().into_iter().flatten() {
        let spec = resolve(doc, spec)?;
        if spec["required"] == true && header(head, name).is_none() {
            return Err(format!("header {name} is declared required but absent"));
        }
    }
    Ok(())
}

/// `schema`, its `$ref` followed (local references only: the document links nowhere else).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> Result<&'a Value, String> {
    match schema.get("$ref").and_then(Value::as_str) {
        None => Ok(schema),
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .ok_or_else(|| format!("$ref {r} is not local"))?;
            doc.pointer(pointer)
                .ok_or_else(|| format!("$ref {r} points nowhere"))
        }
    }
}

/// Checks `value` against `schema`, for the subset of JSON Schema the document uses:
/// `$ref`, `type` (one or a list), `required`, `properties`, `additionalProperties: false`,
/// `enum`, `items`, `minimum`. A keyword it does not know fails the check, so the document
/// cannot promise what this checker would not hold it to; annotations (`description`,
/// `format`, `title`) are allowed and not checked.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema)?;
    let schema = schema
        .as_object()
        .ok_or_else(|| format!("{at}: schema is not an object"))?;
    for key in schema.keys() {
        let known = [
            "$ref",
            "type",
            "required",
            "properties",
            "additionalProperties",
            "enum",
            "items",
            "minimum",
            "description",
            "format",
            "title",
        ];
        if !known.contains(&key.as_str()) {
            return Err(format!("{at}: the checker does not know keyword {key}"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            other => return Err(format!("{at}: bad type {other}")),
        };
        if !types.iter().any(|t| is_type(value, t)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return Err(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let (Some(min), Some(n)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) {
        if n < min {
            return Err(format!("{at}: {n} is below the minimum {min}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                return Err(format!("{at}: required property {name} is missing"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (name, v) in obj {
            match props.and_then(|p| p.get(name)) {
                Some(s) => check(doc, s, v, &format!("{at}.{name}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{at}: property {name} is not declared"));
                }
                None => {}
            }
        }
        match schema.get("additionalProperties") {
            None | Some(Value::Bool(false)) => {}
            Some(other) => return Err(format!("{at}: additionalProperties {other} unsupported")),
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

#[test]
fn the_checker_refuses_bodies_the_document_does_not_declare() {
    let doc: Value = serde_json::from_str(erpsync::http::OPENAPI_JSON).unwrap();
    let error = json!({"$ref": "#/components/schemas/Error"});
    let good = json!({"error": {"code": "NOT_FOUND", "message": "m"}, "request_id": "r"});
    check(&doc, &error, &good, "body").unwrap();
    let wrong = [
        json!({"error": {"code": "NOT_FOUND", "message": "m"}, "extra": 1}),
        json!({"error": {"code": "NOT_FOUND"}}),
        json!({"error": {"code": "NOPE", "message": "m"}}),
        json!({"error": {"code": "NOT_FOUND", "message": 3}}),
        json!([]),
    ];
    for body in wrong {
        assert!(check(&doc, &error, &body, "body").is_err(), "{body}");
    }
    let reply = json!({"$ref": "#/components/schemas/PushResponse"});
    let bad_item = json!({"request_id": "r", "accepted": 0, "rejected": [{"index": -1}]});
    assert!(check(&doc, &reply, &bad_item, "body").is_err());
    let unknown = json!({"type": "string", "pattern": "a+"});
    assert!(check(&doc, &unknown, &json!("a"), "body").is_err());
}
