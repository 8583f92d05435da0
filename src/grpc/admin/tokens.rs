//! Admin's token calls: IssueToken, ListTokens, RevokeToken (authorize, check the
//! request's text, convert, delegate to [`crate::auth::Tokens`]).

use tonic::Request;

use super::super::convert;
use super::super::pb;
use super::request::tenant_id;
use super::Service;
use crate::domain::page_token::page_size;
use crate::error::{AppError, Result};

impl Service {
    pub(super) async fn issue_token_call(
        &self,
        req: Request<pb::IssueTokenRequest>,
    ) -> Result<pb::IssueTokenResponse> {
        self.checked(&req)?;
        let request = convert::token_request(req.into_inner()).map_err(AppError::InvalidFields)?;
        let (new, info) = self.tokens.issue(request).await?;
        Ok(pb::IssueTokenResponse {
            token: Some(convert::token(info)),
            secret: new.secret,
        })
    }

    pub(super) async fn list_tokens_call(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<pb::ListTokensResponse> {
        self.checked(&req)?;
        let req = req.into_inner();
        let mut violations = Vec::new();
        let tenant = (!req.tenant_id.is_empty())
            .then(|| {
                tenant_id(&req.tenant_id)
                    .map_err(|v| violations.push(v))
                    .ok()
            })
            .flatten();
        let page_size = page_size(req.page_size, 100, 1000).unwrap_or_else(|v| {
            violations.push(v);
            0
        });
        if !violations.is_empty() {
            return Err(AppError::InvalidFields(violations));
        }
        let page = self
            .tokens
            .page(
                tenant.as_ref(),
                req.include_inactive,
                page_size,
                &req.page_token,
            )
            .await?;
        Ok(pb::ListTokensResponse {
            tokens: page.items.into_iter().map(convert::token).collect(),
            next_page_token: page.next_page_token,
        })
    }

    pub(super) async fn revoke_token_call(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<pb::RevokeTokenResponse> {
        self.checked(&req)?;
        let revoked = self.tokens.revoke_id(&req.get_ref().token_id).await?;
        Ok(pb::RevokeTokenResponse { revoked })
    }
}
