//! The real grpcurl binary against the server, through reflection only (no .proto files).

use erpsync::domain::token::Role;

use crate::helpers::cli::grpcurl;
use crate::helpers::{spawn_app, Backend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_and_calls_through_reflection() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let addr = format!("127.0.0.1:{}", app.port);

    let list = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || grpcurl(&["-plaintext", &addr, "list"])
    })
    .await
    .unwrap();
    for service in [
        "erpsync.v1.IntegrationHistory",
        "erpsync.v1.ErpIngest",
        "erpsync.v1.Admin",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            list.lines().any(|l| l == service),
            "{service} missing from:\n{list}"
        );
    }

    let describe = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            grpcurl(&[
                "-plaintext",
                &addr,
                "describe",
                "erpsync.v1.IntegrationHistory",
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        describe.contains(
            "rpc GetOverview ( .erpsync.v1.GetOverviewRequest ) returns ( .erpsync.v1.Overview )"
        ),
        "{describe}"
    );
    assert!(describe.contains("rpc StreamLogs ( .erpsync.v1.StreamLogsRequest ) returns ( stream .erpsync.v1.LogEvent )"), "{describe}");

    let call = tokio::task::spawn_blocking(move || {
        grpcurl(&[
            "-plaintext",
            "-H",
            &format!("authorization: Bearer {token}"),
            "-d",
            r#"{"tenant_id":"acme"}"#,
            &addr,
            "erpsync.v1.IntegrationHistory/GetOverview",
        ])
    })
    .await
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&call).unwrap();
    assert_eq!(json["tenantId"], "acme");
    assert_eq!(json["health"], "HEALTH_NEVER_RUN");
    assert_eq!(json["timezone"], "America/Sao_Paulo");
    assert!(
        json.get("nextRunAt").is_none(),
        "no next run, and never 1969: {call}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_service_reports_serving() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let addr = format!("127.0.0.1:{}", app.port);
    let out = tokio::task::spawn_blocking(move || {
        grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"])
    })
    .await
    .unwrap();
    assert!(out.contains("SERVING"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_lists_the_served_services_only() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let channel = tonic::transport::Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected answer {answer:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"erpsync.v1.IntegrationHistory".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"erpsync.v1.ErpIngest".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"erpsync.v1.CrmSink".to_owned()),
        "CrmSink is the host's service, not served here: {names:?}"
    );
}
