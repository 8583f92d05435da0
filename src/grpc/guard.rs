//! The gRPC routes' guard. A request that is not gRPC (HTTP/1.x, or a content type other
//! than `application/grpc`) is answered 415 in the HTTP route's JSON error shape instead of
//! an empty `200 application/grpc`; on IntegrationHistory, which the `/ui/` page calls
//! over gRPC-Web, a gRPC-Web request over any HTTP version passes too (tonic-web, inside
//! this guard, translates it). A request whose message does not decode — tonic's
//! framing or prost's decoding refused it, before any handler ran — is the caller's fault:
//! it is answered INVALID_ARGUMENT with a short message instead of tonic's INTERNAL with
//! prost's whole field path.

use axum::extract::Request;
use axum::http::{header, StatusCode, Version};
use axum::middleware::Next;
use axum::response::Response;
use tonic::{Code, Status};

use crate::domain::text::excerpt;
use crate::error::AppError;

/// The layer's function, on every gRPC service's routes.
pub async fn grpc_only(req: Request, next: Next) -> Response {
    if req.version() < Version::HTTP_2 || !grpc_content_type(&req) {
        return not_grpc(&req);
    }
    short_malformed(next.run(req).await)
}

/// The layer's function on a service that speaks gRPC-Web as well (IntegrationHistory).
pub async fn grpc_or_grpc_web(req: Request, next: Next) -> Response {
    if crate::http::is_grpc_web(&req) {
        return short_malformed(next.run(req).await);
    }
    grpc_only(req, next).await
}

/// `response`, or the short INVALID_ARGUMENT for tonic's answer to a request that does
/// not decode, in the response's own content type (gRPC or gRPC-Web).
fn short_malformed(response: Response) -> Response {
    match Status::from_header_map(response.headers()).and_then(|s| malformed(&s)) {
        Some(status) => {
            tracing::debug!(message = status.message(), "malformed gRPC request");
            crate::http::grpc_answer(status, response.headers().get(header::CONTENT_TYPE))
        }
        None => response,
    }
}

/// `application/grpc`, or `application/grpc+proto` and the like: what tonic serves.
fn grpc_content_type(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct == "application/grpc" || ct.starts_with("application/grpc+"))
}

/// 415 with `{"error":{"code":"INVALID_ARGUMENT","message":…}}`.
fn not_grpc(req: &Request) -> Response {
    let err = AppError::InvalidArgument(format!(
        "{} is a gRPC method: call it over HTTP/2 with Content-Type application/grpc \
         (ERP data over HTTP/1.1 JSON goes to POST /erp/v1/{{table}})",
        excerpt(req.uri().path())
    ));
    crate::http::json_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        crate::ingest::error_json(&err, None),
    )
}

/// The INVALID_ARGUMENT status for tonic's own INTERNAL answer to a request message that
/// does not decode; None for any other status (the handlers' INTERNAL errors never carry
/// these texts: they answer a generic message).
fn malformed(status: &Status) -> Option<Status> {
    if status.code() != Code::Internal {
        return None;
    }
    let m = status.message();
    let why = if let Some(rest) = m.strip_prefix("failed to decode Protobuf message: ") {
        // "Outer.field: Inner.field: …: description": the outermost field and the cause.
        let is_field = |p: &str| !p.is_empty() && p.contains('.') && !p.contains(' ');
        let parts: Vec<&str> = rest.split(": ").collect();
        let depth = parts.iter().take_while(|p| is_field(p)).count();
        let cause = parts[depth.min(parts.len())..].join(": ");
        match parts.first().filter(|_| depth > 0) {
            Some(outer) => format!("the message does not decode: {outer}: {cause}"),
            None => format!("the message does not decode: {cause}"),
        }
    } else if m.contains("compressed-flag but no grpc-encoding") {
        "the message is flagged compressed but no grpc-encoding was sent".to_owned()
    } else if m.contains("invalid compression flag") {
        "invalid compression flag: valid flags are 0 and 1".to_owned()
    } else if m == "Unexpected EOF decoding stream." {
        "the message ends before its declared length".to_owned()
    } else if m == "Missing request message." {
        "no request message".to_owned()
    } else {
        return None;
    };
    let mut short: String = why.chars().take(160).collect();
    if short.len() < why.len() {
        short.push('…');
    }
    Some(Status::invalid_argument(format!(
        "malformed request: {short}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_framing_errors_become_short_invalid_arguments() {
        let deep = format!(
            "failed to decode Protobuf message: PushRequest.records: {}recursion limit reached",
            "Struct.fields: Value.kind: ".repeat(60)
        );
        for (internal, expected) in [
            (
                deep.as_str(),
                "malformed request: the message does not decode: PushRequest.records: recursion limit reached",
            ),
            (
                "failed to decode Protobuf message: GetRunRequest.run_id: invalid string value: data is not UTF-8 encoded",
                "malformed request: the message does not decode: GetRunRequest.run_id: invalid string value: data is not UTF-8 encoded",
            ),
            (
                "failed to decode Protobuf message: invalid wire type value: 7",
                "malformed request: the message does not decode: invalid wire type value: 7",
            ),
            (
                "protocol error: received message with compressed-flag but no grpc-encoding was specified",
                "malformed request: the message is flagged compressed but no grpc-encoding was sent",
            ),
            (
                "Unexpected EOF decoding stream.",
                "malformed request: the message ends before its declared length",
            ),
            ("Missing request message.", "malformed request: no request message"),
        ] {
            let mapped = malformed(&Status::internal(internal)).expect(internal);
            assert_eq!(mapped.code(), Code::InvalidArgument);
            assert_eq!(mapped.message(), expected);
        }
    }

    #[test]
    fn other_statuses_are_left_alone() {
        assert!(malformed(&Status::internal(
            "internal error; the server log has the details"
        ))
        .is_none());
        assert!(malformed(&Status::not_found("failed to decode Protobuf message: x")).is_none());
    }
}
