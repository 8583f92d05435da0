//! `erpsync deletes list|resolve`: the deletions the delete guard held (Excessivos
//! Deletes) and the decisions on them, over a running server's IntegrationHistory with a
//! crm token.

use clap::{Args, Subcommand};

use super::client::{authorized, channel, ServerArgs};
use crate::grpc::pb::{
    integration_history_client::IntegrationHistoryClient, ListPendingDeletesRequest, PendingDelete,
    ResolveAction, ResolvePendingDeletesRequest,
};

/// What `erpsync deletes` does.
#[derive(Debug, Subcommand)]
pub enum DeletesCommand {
    /// Lists held deletions newest first (by when each entered its state), with who
    /// decided and when.
    List(ListArgs),
    /// Approves, discards (keeps the record in the CRM) or reopens (a kept record's
    /// deletion is held again) deletions.
    Resolve(ResolveArgs),
}

/// `erpsync deletes list`'s flags.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// company or contact.
    #[arg(long, default_value = "company")]
    table: String,
    /// A state to list: HELD, APPROVED, APPLIED, DISCARDED, SUPERSEDED or ALL (repeat
    /// for several); HELD and APPROVED when absent.
    #[arg(long = "state")]
    states: Vec<String>,
    /// Only the deletions this run held or decided.
    #[arg(long)]
    run: Option<String>,
    /// Deletions per page.
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// The page to print (as printed after the previous one).
    #[arg(long, default_value = "")]
    page_token: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// `erpsync deletes resolve`'s flags.
#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// company or contact.
    #[arg(long, default_value = "company")]
    table: String,
    /// What to do.
    #[arg(long, value_enum)]
    action: ActionArg,
    /// An external id to resolve (repeat for several).
    #[arg(long = "id", required_unless_present = "all", conflicts_with = "all")]
    ids: Vec<String>,
    /// Every deletion the action takes (HELD for approve, HELD and APPROVED for discard,
    /// kept ones for reopen).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// A decision on held deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ActionArg {
    /// The next run deletes them in the CRM.
    Approve,
    /// Keep the records in the CRM; later runs do not hold their deletion again.
    Discard,
    /// Reverse a discard: the deletion is held again.
    Reopen,
}

impl ActionArg {
    fn proto(self) -> ResolveAction {
        match self {
            Self::Approve => ResolveAction::Approve,
            Self::Discard => ResolveAction::Discard,
            Self::Reopen => ResolveAction::Reopen,
        }
    }
}

/// Runs `erpsync deletes …` against its `--server` with its crm `--token`.
pub async fn run(command: DeletesCommand) -> anyhow::Result<()> {
    let server = match &command {
        DeletesCommand::List(a) => &a.server,
        DeletesCommand::Resolve(a) => &a.server,
    };
    let (mut client, token) = (
        IntegrationHistoryClient::new(channel(&server.server).await?),
        server.token.clone(),
    );
    let token = token.as_str();
    match command {
        DeletesCommand::List(a) => {
            let page = client
                .list_pending_deletes(authorized(
                    ListPendingDeletesRequest {
                        tenant_id: a.tenant,
                        table: a.table,
                        page_size: a.page_size,
                        page_token: a.page_token,
                        states: a.states,
                        run_id: a.run.unwrap_or_default(),
                    },
                    token,
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            print!("{}", listing(&page.pending_deletes, &page.next_page_token));
        }
        DeletesCommand::Resolve(a) => {
            let done = client
                .resolve_pending_deletes(authorized(
                    ResolvePendingDeletesRequest {
                        tenant_id: a.tenant,
                        table: a.table,
                        ids: a.ids,
                        all: a.all,
                        action: a.action.proto().into(),
                    },
                    token,
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{} deletions resolved", done.resolved);
        }
    }
    Ok(())
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// A page of deletions for a person: one line each, then the next page's flag; every
/// line ends with a newline.
fn listing(page: &[PendingDelete], next_page_token: &str) -> String {
    let mut out = String::new();
    if page.is_empty() {
        out.push_str("no deletions\n");
    }
    for p in page {
        out.push_str(&line(p));
        out.push('\n');
    }
    if !next_page_token.is_empty() {
        out.push_str(&format!("more: --page-token {next_page_token}\n"));
    }
    out
}

fn line(p: &PendingDelete) -> String {
    let at = |t: &Option<prost_types::Timestamp>| {
        t.as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    let by = match (p.decided_by.as_str(), p.decided_run_id.as_str()) {
        ("", _) => String::new(),
        (by, "") => format!(" by {by}"),
        (by, run) => format!(" by {by} (run {run})"),
    };
    format!(
        "{:<10} {} {:?} {} | detected {} in run {} | since {}{by}{}",
        p.state,
        p.external_id,
        p.name,
        p.document,
        at(&p.detected_at),
        p.detected_run_id,
        at(&p.state_changed_at),
        if p.kept { " | kept in the CRM" } else { "" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_shows_who_decided_and_ends_with_a_newline() {
        let ts = |s| {
            Some(prost_types::Timestamp {
                seconds: s,
                nanos: 0,
            })
        };
        let kept = PendingDelete {
            table: "company".into(),
            external_id: "c1".into(),
            name: "ACME".into(),
            document: "11222333000181".into(),
            detected_run_id: "r1".into(),
            detected_at: ts(0),
            state: "DISCARDED".into(),
            state_changed_at: ts(60),
            decided_by: "support".into(),
            decided_run_id: String::new(),
            kept: true,
        };
        let applied = PendingDelete {
            state: "APPLIED".into(),
            decided_by: "run".into(),
            decided_run_id: "r2".into(),
            kept: false,
            ..kept.clone()
        };
        let out = listing(&[kept, applied], "tok");
        assert_eq!(
            out,
            "DISCARDED  c1 \"ACME\" 11222333000181 | detected 1970-01-01 00:00:00Z in run r1 | since 1970-01-01 00:01:00Z by support | kept in the CRM\n\
             APPLIED    c1 \"ACME\" 11222333000181 | detected 1970-01-01 00:00:00Z in run r1 | since 1970-01-01 00:01:00Z by run (run r2)\n\
             more: --page-token tok\n"
        );
        assert_eq!(listing(&[], ""), "no deletions\n");
    }
}
