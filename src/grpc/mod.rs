//! The gRPC transport: generated types, the services, auth, health and reflection, all
//! wired in one place. prost types never leave this module (convert.rs maps them).

mod auth;
mod convert;
mod erp_ingest;
mod integration_history;

use tonic::service::Routes;

use crate::app::AppState;
use crate::error::Result;

/// The generated code of `proto/erpsync/v1` (clients included, for the CLI and tests).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("erpsync.v1");

    /// The encoded descriptor set of the contract, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/erpsync_descriptor.bin"));
}

use pb::{
    erp_ingest_server::ErpIngestServer, integration_history_server::IntegrationHistoryServer,
};

/// Every gRPC service erpsync serves: IntegrationHistory, ErpIngest, health, and
/// reflection v1 and v1alpha (grpcurl 1.8 only speaks v1alpha).
pub async fn routes(state: AppState) -> Result<Routes> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(anyhow::Error::from)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(anyhow::Error::from)?;

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<IntegrationHistoryServer<integration_history::Service>>()
        .await;
    health_reporter
        .set_serving::<ErpIngestServer<erp_ingest::Service>>()
        .await;

    Ok(Routes::new(IntegrationHistoryServer::new(
        integration_history::Service::new(state.clone()),
    ))
    .add_service(ErpIngestServer::new(erp_ingest::Service::new(state)))
    .add_service(health)
    .add_service(reflection_v1)
    .add_service(reflection_v1alpha))
}
