//! Admin.DeleteTenant and Admin.ExportTenant: requests checked and converted, the work
//! delegated to [`crate::purge::Purge`].

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Response, Status};

use super::super::pb;
use super::request::{tenant, EventStream};
use crate::error::Result;
use crate::purge::Purge;

/// DeleteTenant.
pub(super) async fn delete_tenant(
    purge: &Purge,
    req: pb::DeleteTenantRequest,
) -> Result<Response<pb::DeleteTenantResponse>, Status> {
    let id = tenant(&req.tenant_id)?;
    let done = purge.delete(&id, req.force).await?;
    Ok(Response::new(pb::DeleteTenantResponse {
        deleted: done.deleted,
        rows_deleted: done.rows,
    }))
}

/// ExportTenant.
pub(super) async fn export_tenant(
    purge: &Purge,
    req: pb::ExportTenantRequest,
) -> Result<Response<EventStream<pb::ExportTenantChunk>>, Status> {
    let id = tenant(&req.tenant_id)?;
    let chunks = purge.export(&id).await?;
    let stream = ReceiverStream::new(chunks).map(|chunk| {
        chunk
            .map(|ndjson| pb::ExportTenantChunk { ndjson })
            .map_err(Status::from)
    });
    Ok(Response::new(Box::pin(stream)))
}
