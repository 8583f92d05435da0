//! The gRPC transport: generated types, the services (IntegrationHistory, ErpIngest,
//! Admin), auth, health and reflection, all
//! wired in one place, behind the edge's authentication. prost types never leave this
//! module (`convert` maps them).

mod admin;
pub(crate) mod auth;
mod convert;
pub mod crm_sink_client;
mod erp_ingest;
mod guard;
pub mod health;
mod integration_history;
/// The generated code of `proto/erpsync/v1` (clients included, for the CLI and tests).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb;

use tonic::server::NamedService;
use tonic::service::Routes;

use crate::error::Result;
use crate::services::Services;

/// The conversions a gRPC client of erpsync (the CLI's `--server` commands) shares with
/// the server, so both read and write the wire alike.
pub mod wire {
    pub use super::convert::{
        deployment_status, deployment_status_from, instant, integration_type,
        integration_type_from, role, role_from,
    };
}

use pb::{
    admin_server::AdminServer, erp_ingest_server::ErpIngestServer,
    integration_history_server::IntegrationHistoryServer,
};

/// Every route of the port: the gRPC services (IntegrationHistory, also over gRPC-Web,
/// ErpIngest, Admin, health, and reflection v1 and v1alpha — grpcurl 1.8 only speaks
/// v1alpha), the HTTP route and its OpenAPI document, and the `/ui/` page (framed only by
/// `ui_frame_ancestors`), and the metrics (behind `metrics_token` when set); and the health statuses, for the probe that keeps them in step
/// with the database.
pub async fn routes(
    services: Services,
    ui_frame_ancestors: &str,
    metrics_token: Option<String>,
) -> Result<(Routes, health::Health)> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(anyhow::Error::from)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(anyhow::Error::from)?;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    let statuses = health::Health::new(
        health_reporter,
        vec![
            <IntegrationHistoryServer<integration_history::Service> as NamedService>::NAME,
            <ErpIngestServer<erp_ingest::Service> as NamedService>::NAME,
            <AdminServer<admin::Service> as NamedService>::NAME,
        ],
    );
    statuses.set(tonic_health::ServingStatus::Serving).await;

    // Behind the edge (authentication, the grant put on the request): IntegrationHistory,
    // ErpIngest and the HTTP route. ErpIngest has a guard of its own so a message over the
    // body limit can be answered RESOURCE_EXHAUSTED and logged to the tenant (tonic alone
    // would answer OUT_OF_RANGE).
    let ingest = ErpIngestServer::new(erp_ingest::Service::new(
        services.ingestor.clone(),
        services.tokens.clone(),
    ))
    .max_decoding_message_size(services.ingestor.limits().max_body_bytes);
    let ingest = axum::Router::new()
        .route_service(
            &all_methods::<ErpIngestServer<erp_ingest::Service>>(),
            ingest,
        )
        // A push takes one of ingestion's slots before tonic reads and decodes its
        // message: memory stays bounded by the slots times the body limit, however many
        // ERPs push at once.
        .layer(axum::middleware::from_fn_with_state(
            services.ingestor.clone(),
            erp_ingest::admission,
        ))
        .layer(axum::middleware::from_fn_with_state(
            services.ingestor.clone(),
            erp_ingest::size_guard,
        ))
        .layer(axum::middleware::from_fn(guard::grpc_only));
    // IntegrationHistory speaks gRPC-Web too, for the `/ui/` page (tonic-web translates).
    let history = IntegrationHistoryServer::new(integration_history::Service::new(&services));
    let history = axum::Router::new()
        .route_service(
            &all_methods::<IntegrationHistoryServer<integration_history::Service>>(),
            history,
        )
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(axum::middleware::from_fn(guard::grpc_or_grpc_web));
    let admin = AdminServer::new(admin::Service::new(&services));
    let admin = axum::Router::new()
        .route_service(&all_methods::<AdminServer<admin::Service>>(), admin)
        .layer(axum::middleware::from_fn(guard::grpc_only));
    let authenticated = axum::Router::new()
        .merge(ingest)
        .merge(history)
        .merge(admin)
        .merge(crate::http::router(
            services.ingestor.clone(),
            services.tokens.clone(),
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            services.tokens.clone(),
            crate::edge::authenticate,
        ));

    // Open to anyone (no token): health, reflection, the HTTP route's OpenAPI document,
    // the `/ui/` page's files and the metrics; a call admits its connection.
    let docs = crate::http::docs_router()
        .merge(crate::ui::router(
            pb::FILE_DESCRIPTOR_SET,
            ui_frame_ancestors,
        ))
        .merge({
            let db = services.db.clone();
            let sample = move || {
                let db = db.clone();
                async move {
                    use crate::domain::alert::AlertKind;
                    let open_alerts = match crate::storage::alerts::open_by_kind(&db).await {
                        Ok(open) => Some(
                            AlertKind::ALL
                                .iter()
                                .map(|kind| {
                                    let n =
                                        open.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
                                    (kind.as_str(), n)
                                })
                                .collect(),
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "metrics: cannot count the open alerts");
                            None
                        }
                    };
                    crate::metrics::Sample {
                        pool: db.pool_use(),
                        open_alerts,
                    }
                }
            };
            crate::metrics::router(sample, metrics_token)
        })
        .layer(axum::middleware::from_fn(crate::edge::admit));
    let router = Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .layer(axum::middleware::from_fn(crate::edge::admit))
        .layer(axum::middleware::from_fn(guard::grpc_only))
        .merge(docs)
        .merge(authenticated)
        .fallback(crate::http::not_found)
        // Every call's pool timeouts are judged by this server's database: busy or down.
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(services.db.clone())
                as std::sync::Arc<dyn crate::error::PoolVerdict>,
            judged,
        ));
    Ok((Routes::from(router), statuses))
}

/// The route of every method of gRPC service `S`.
fn all_methods<S: NamedService>() -> String {
    format!("/{}/{{*rest}}", S::NAME)
}

/// The layer's function: runs the call with its pool timeouts judged by `verdict`.
async fn judged(
    axum::extract::State(verdict): axum::extract::State<
        std::sync::Arc<dyn crate::error::PoolVerdict>,
    >,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    crate::error::judged_by(verdict, next.run(req)).await
}
