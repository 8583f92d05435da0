//! ErpIngest: where ERPs push their records.

use tonic::{Request, Response, Status};

use super::auth::tenant_call;
use super::pb::{self, erp_ingest_server::ErpIngest};
use crate::app::AppState;
use crate::domain::token::Role;
use crate::error::AppError;

const SERVICE: &str = "ErpIngest";

/// The service, over the shared application state.
pub struct Service {
    state: AppState,
}

impl Service {
    /// A service over `state`.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Checks auth, then answers UNIMPLEMENTED naming what is still missing.
    async fn not_yet<T>(&self, req: &Request<T>, tenant_id: &str, what: &str) -> Status {
        match tenant_call(&self.state, req, Role::Erp, SERVICE, tenant_id).await {
            Err(e) => e.into(),
            Ok(_) => AppError::Unimplemented(format!("{what} is not implemented yet")).into(),
        }
    }
}

#[tonic::async_trait]
impl ErpIngest for Service {
    async fn push(
        &self,
        req: Request<pb::PushRequest>,
    ) -> Result<Response<pb::PushResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "Push (record validation, staging and the request log)",
            )
            .await)
    }

    async fn report_counts(
        &self,
        req: Request<pb::ReportCountsRequest>,
    ) -> Result<Response<pb::ReportCountsResponse>, Status> {
        Err(self
            .not_yet(
                &req,
                &req.get_ref().tenant_id,
                "ReportCounts (onboarding reconciliation)",
            )
            .await)
    }
}
