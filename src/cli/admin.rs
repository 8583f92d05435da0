//! Provisioning commands: they open the database directly (the same `DATABASE_URL` as
//! `serve`), so they work with or without a running server; `tenant create|update|list|
//! show|delete|export` and `token issue|list|revoke` also go through a running server's
//! Admin service with `--server` (see `remote`), printing the same.

use anyhow::{anyhow, bail, Context};
use chrono::Utc;
use clap::Subcommand;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::remote::{ExportChunks, Remote};
use crate::auth::Tokens;
use crate::config::setting;
use crate::domain::abc::AbcInput;
use crate::domain::freshness::FreshnessInput;
use crate::domain::secret::SecretKey;
use crate::domain::tenant::{
    DeploymentStatus, IntegrationType, NewTenant, SettingsInput, SettingsUpdate, Tenant, TenantId,
};
use crate::domain::token::{Role, TenantScope, TokenInfo, TokenRequest, MAX_EXPIRES_IN_DAYS};
use crate::domain::view::ViewTable;
use crate::domain::view_source::{HostPort, SourcePolicy};
use crate::error::AppError;
use crate::purge::Purge;
use crate::storage::Db;
use crate::tenants::Tenants;
use crate::view_admin::{ViewAdmin, ViewRequest};
use crate::viewdb::{Naming, ViewAccess};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant (active, not yet scheduled, schedule 00:00, 24 h without success).
    Create {
        /// Tenant id: lowercase letters, digits, '_' or '-'.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// IANA time zone of the tenant.
        #[arg(long, default_value = "America/Sao_Paulo")]
        timezone: String,
        /// ERP product name.
        #[arg(long)]
        erp_name: Option<String>,
        /// ERP version.
        #[arg(long)]
        erp_version: Option<String>,
        /// api or view.
        #[arg(long, default_value = "api")]
        integration_type: String,
        /// not_started, in_progress or completed.
        #[arg(long, default_value = "not_started")]
        deployment_status: String,
        /// The business-rule text shown in the overview.
        #[arg(long)]
        business_rule: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Changes a tenant's settings (only the flags given).
    Update {
        /// Tenant id.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// ERP product name.
        #[arg(long)]
        erp_name: Option<String>,
        /// ERP version.
        #[arg(long)]
        erp_version: Option<String>,
        /// api or view.
        #[arg(long)]
        integration_type: Option<String>,
        /// not_started, in_progress or completed.
        #[arg(long)]
        deployment_status: Option<String>,
        /// The business-rule text shown in the overview.
        #[arg(long)]
        business_rule: Option<String>,
        /// Hold a run's deletions above this percentage of the table in the CRM…
        #[arg(long)]
        delete_guard_percent: Option<f64>,
        /// …and at least this many rows.
        #[arg(long)]
        delete_guard_min_rows: Option<u64>,
        /// Days this tenant's runs are kept with their stages, tables and events
        /// (7–3650; 0: the server's --run-history-days).
        #[arg(long)]
        run_history_days: Option<u32>,
        /// Days this tenant's ABC reports and category changes are kept (7–3650; 0: the
        /// server's --abc-history-days).
        #[arg(long)]
        abc_history_days: Option<u32>,
        /// A table's freshness limit, TABLE=AGE (invoice=24h, company=7d; s, min, h or
        /// d; 1 min to 365 d): past it without a newly accepted record, a STALE_TABLE
        /// alert opens. Repeat for several tables.
        #[arg(long = "table-freshness", value_name = "TABLE=AGE", value_parser = parse_table_age)]
        table_freshness: Vec<FreshnessInput>,
        /// A table whose freshness limit is removed (repeat for several).
        #[arg(long = "clear-table-freshness", value_name = "TABLE")]
        clear_table_freshness: Vec<String>,
        /// Strict mode: true rejects a pushed record with a field its table does not
        /// know; false (the default) keeps it and warns about the field in the answer.
        #[arg(long, value_name = "true|false")]
        strict_fields: Option<bool>,
        #[command(flatten)]
        abc: Box<AbcArgs>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Makes the tenant a View integration: erpsync reads the ERP's SQL views. The
    /// configuration file is JSON: {"page_size": 1000, "tables": [{"table": "company",
    /// "view": "erp.v_company", "mode": "full", "key": "id", "columns": {"name":
    /// "razao_social", "document": "cnpj"}, "watermark": "updated_at", "deleted":
    /// "excluido"}]} (see the README, View integrations).
    SetView {
        /// Tenant id.
        #[arg(long)]
        id: String,
        /// The ERP database's URL (postgres://, mysql://, sqlite:); required the first
        /// time, kept when left out. Its password is never printed.
        #[arg(long, env = "ERPSYNC_VIEW_URL", hide_env_values = true)]
        url: Option<String>,
        /// The JSON configuration file ("-" for standard input).
        #[arg(long)]
        config: String,
        /// Check every view and column against the ERP database before saving.
        #[arg(long)]
        check: bool,
    },
    /// Shows the tenant's View configuration (password masked) and watermarks.
    ShowView {
        /// Tenant id.
        id: String,
    },
    /// Removes the tenant's View configuration: it becomes an API integration again.
    ClearView {
        /// Tenant id.
        id: String,
    },
    /// Grants the tenant a View source it may name through the API (SetViewConfig): one
    /// database on a server (postgres:// or mysql://HOST[:PORT]/DATABASE; credentials
    /// in the URL are not kept) or one SQLite file. It must be inside the server-wide
    /// list (--view-allow-host, --view-sqlite-dir, as `serve` has them); a source
    /// granted to one tenant is refused to every other.
    GrantViewSource {
        /// The tenant and the source.
        #[command(flatten)]
        source: NamedSource,
        /// The server-wide list's hosts, as `serve --view-allow-host` has them.
        #[arg(
            long = setting::VIEW_ALLOW_HOST.flag,
            env = setting::VIEW_ALLOW_HOST.env,
            value_delimiter = ','
        )]
        view_allow_hosts: Vec<HostPort>,
        /// The server-wide list's SQLite folders, as `serve --view-sqlite-dir` has them.
        #[arg(
            long = setting::VIEW_SQLITE_DIR.flag,
            env = setting::VIEW_SQLITE_DIR.env,
            value_delimiter = ','
        )]
        view_sqlite_dirs: Vec<std::path::PathBuf>,
    },
    /// Takes a View source back from the tenant (as `grant-view-source` or
    /// `list-view-sources` names it): a stored View URL naming it is refused from the
    /// tenant's next run and next SetViewConfig on.
    RevokeViewSource(NamedSource),
    /// Lists the View sources granted to the tenant.
    ListViewSources {
        /// Tenant id.
        id: String,
    },
    /// Lists every tenant.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Shows one tenant's settings.
    Show {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Removes the tenant and every row of it in every table (its staged records, runs,
    /// logs, ABC data, View configuration, sealed secrets), and its tokens: a token of
    /// this tenant alone is deleted, a crm token of several loses this one. Refused
    /// while a run of the tenant is RUNNING, unless --force. Nothing to do for an
    /// unknown tenant.
    Delete {
        /// Tenant id.
        #[arg(long)]
        id: String,
        /// Delete even while a run is RUNNING: the run is cut short.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Writes the tenant's data as newline-delimited JSON, one {"table", "row"} line per
    /// row, the tenant's settings first; secrets left out.
    Export {
        /// Tenant id.
        #[arg(long)]
        id: String,
        /// The file to write (standard output when absent).
        #[arg(short = 'o', long = "output")]
        output: Option<std::path::PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// ABC analysis, lifecycle and shift-guard settings of `tenant update`.
#[derive(Debug, clap::Args)]
pub struct AbcArgs {
    /// Revenue from invoice (default) or order totals.
    #[arg(long)]
    abc_basis: Option<String>,
    /// Months of revenue up to the run's date (default 12).
    #[arg(long)]
    abc_window_months: Option<u32>,
    /// Class A below this cumulative revenue percent (default 80)…
    #[arg(long)]
    abc_a_threshold: Option<f64>,
    /// …class B below this one (default 95); C after.
    #[arg(long)]
    abc_b_threshold: Option<f64>,
    /// NEW when the first purchase is at most this many days old (default 90).
    #[arg(long)]
    lifecycle_new_days: Option<u32>,
    /// ACTIVE when the last purchase is at most this many days old (default 180)…
    #[arg(long)]
    lifecycle_active_days: Option<u32>,
    /// …AT_RISK up to this many days (default 365), INACTIVE after.
    #[arg(long)]
    lifecycle_inactive_days: Option<u32>,
    /// Hold a classification changing the class of more than this percent of companies
    /// (default 30).
    #[arg(long)]
    abc_shift_guard_percent: Option<f64>,
    /// Turn the ABC shift guard on or off.
    #[arg(long, value_parser = parse_on_off)]
    abc_shift_guard: Option<bool>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("{s:?}: use on or off")),
    }
}

impl From<AbcArgs> for AbcInput {
    fn from(a: AbcArgs) -> Self {
        AbcInput {
            basis: a.abc_basis,
            window_months: a.abc_window_months,
            a_threshold: a.abc_a_threshold,
            b_threshold: a.abc_b_threshold,
            new_days: a.lifecycle_new_days,
            active_days: a.lifecycle_active_days,
            inactive_days: a.lifecycle_inactive_days,
            shift_guard_percent: a.abc_shift_guard_percent,
            shift_guard: a.abc_shift_guard,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issues a token; prints it once, alone on the last line (only its hash is stored).
    Issue {
        /// crm (IntegrationHistory), erp (ErpIngest, one tenant) or admin (Admin: the
        /// host's provisioning, every tenant).
        #[arg(long)]
        role: String,
        /// A tenant the token reaches (repeat for several crm tenants).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// A crm token for every tenant, present and future.
        #[arg(long, conflicts_with = "tenants")]
        all_tenants: bool,
        /// The token stops working this many days after issue (default: until revoked).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_EXPIRES_IN_DAYS)))]
        expires_in_days: Option<u32>,
        /// What to call the token, to recognize it in `token list` (at most 200
        /// characters).
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revokes a token by its id (tok_…) or by the token itself.
    Revoke {
        /// The token id or the token.
        token: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lists tokens (ids, roles, tenants and labels; never the secrets).
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

async fn open(url: &str) -> anyhow::Result<Db> {
    let db = Db::connect(url).await?;
    db.migrate().await?;
    Ok(db)
}

/// `erpsync migrate`.
pub async fn migrate(url: &str) -> anyhow::Result<()> {
    open(url).await?;
    println!("migrations applied");
    Ok(())
}

/// `erpsync tenant …`.
pub async fn tenant(cmd: TenantCommand, url: &str, key: Option<SecretKey>) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Create {
            id,
            name,
            timezone,
            erp_name,
            erp_version,
            integration_type,
            deployment_status,
            business_rule,
            remote,
        } => {
            let new = NewTenant {
                id,
                name,
                timezone: Some(timezone),
                settings: SettingsInput {
                    erp_name,
                    erp_version,
                    business_rule,
                    integration_type: Some(parse_integration_type(&integration_type)?),
                    deployment_status: Some(parse_deployment_status(&deployment_status)?),
                    ..SettingsInput::default()
                },
            };
            let t = match remote.admin().await? {
                Some(mut admin) => admin.create_tenant(new).await?,
                None => tenants(url).await?.create(new).await?,
            };
            print!("{}", describe(&t));
        }
        TenantCommand::Update {
            id,
            name,
            erp_name,
            erp_version,
            integration_type,
            deployment_status,
            business_rule,
            delete_guard_percent,
            delete_guard_min_rows,
            run_history_days,
            abc_history_days,
            table_freshness,
            clear_table_freshness,
            strict_fields,
            abc,
            remote,
        } => {
            let input = SettingsInput {
                name,
                erp_name,
                erp_version,
                deployment_status: deployment_status
                    .as_deref()
                    .map(parse_deployment_status)
                    .transpose()?,
                business_rule,
                integration_type: integration_type
                    .as_deref()
                    .map(parse_integration_type)
                    .transpose()?,
                delete_guard_percent,
                delete_guard_min_rows,
                abc: (*abc).into(),
                run_history_days,
                abc_history_days,
                table_freshness,
                clear_table_freshness,
                strict_fields,
            };
            let freshness = freshness_text(&input);
            let t = match remote.admin().await? {
                Some(mut admin) => admin.update_tenant(&id, input).await?,
                None => {
                    let id = TenantId::parse(&id).map_err(|e| anyhow!(e))?;
                    let settings = SettingsUpdate::parse(input)
                        .map_err(|v| anyhow!(AppError::InvalidFields(v)))?;
                    tenants(url)
                        .await?
                        .update(&id, Some(settings), None)
                        .await?
                }
            };
            print!("{}", describe(&t));
            if let Some(freshness) = freshness {
                println!("{freshness}");
            }
        }
        TenantCommand::SetView {
            id,
            url: view_url,
            config,
            check,
        } => {
            let id = TenantId::parse(&id).map_err(|e| anyhow!(e))?;
            let text = if config == "-" {
                std::io::read_to_string(std::io::stdin())
                    .context("reading the configuration from stdin")?
            } else {
                std::fs::read_to_string(&config).with_context(|| format!("reading {config}"))?
            };
            let file: ViewFile = serde_json::from_str(&text)
                .with_context(|| format!("{config} is not a valid View configuration"))?;
            let db = open(url).await?;
            let views = view_admin(&db, url, key).await?;
            let request = ViewRequest {
                url: view_url.or(file.url),
                page_size: file.page_size,
                tables: file.tables,
                check,
            };
            views
                .configure(Naming::Operator, &id, request, Vec::new())
                .await
                .map_err(|e| anyhow!(e))?;
            print!("{}", describe_view(&views, &id).await?);
        }
        TenantCommand::ShowView { id } => {
            let id = TenantId::parse(&id).map_err(|e| anyhow!(e))?;
            let db = open(url).await?;
            let views = view_admin(&db, url, key).await?;
            print!("{}", describe_view(&views, &id).await?);
        }
        TenantCommand::ClearView { id } => {
            let id = TenantId::parse(&id).map_err(|e| anyhow!(e))?;
            let db = open(url).await?;
            if view_admin(&db, url, None).await?.clear(&id).await? {
                println!("View configuration of {id} removed; it is an API integration now");
            } else {
                println!("{id} had no View configuration; it is an API integration");
            }
        }
        TenantCommand::GrantViewSource {
            source,
            view_allow_hosts,
            view_sqlite_dirs,
        } => {
            let (id, source) = source.parse()?;
            let db = open(url).await?;
            let policy = SourcePolicy {
                hosts: view_allow_hosts,
                sqlite_dirs: view_sqlite_dirs,
            };
            let access = ViewAccess::new(policy, None, url, db.instance_id().await?)?;
            let (grant, new) = ViewAdmin::new(db, access, crate::clock::system())
                .grant(&id, &source)
                .await
                .map_err(|e| anyhow!(e))?;
            if new {
                println!("{id} may name the View source {grant}");
            } else {
                println!("{id} already had the View source {grant}");
            }
        }
        TenantCommand::RevokeViewSource(source) => {
            let (id, source) = source.parse()?;
            let db = open(url).await?;
            let (grant, had) = view_admin(&db, url, None)
                .await?
                .revoke(&id, &source)
                .await
                .map_err(|e| anyhow!(e))?;
            if had {
                println!("{id} may no longer name the View source {grant}");
            } else {
                println!("{id} had no grant of the View source {grant}");
            }
        }
        TenantCommand::ListViewSources { id } => {
            let id = TenantId::parse(&id).map_err(|e| anyhow!(e))?;
            let db = open(url).await?;
            let grants = view_admin(&db, url, None).await?.grants(&id).await?;
            if grants.is_empty() {
                println!("{id}: no View source granted");
            }
            for grant in grants {
                println!("{grant}");
            }
        }
        TenantCommand::List { remote } => {
            let all = match remote.admin().await? {
                Some(mut admin) => admin.tenants().await?,
                None => tenants(url).await?.list().await?,
            };
            for t in all {
                println!(
                    "{}\t{}\t{}\t{}\tactive={}\tscheduled={}",
                    t.id,
                    t.name,
                    t.timezone.name(),
                    t.integration_type.as_str(),
                    t.active,
                    t.scheduled
                );
            }
        }
        TenantCommand::Show { id, remote } => {
            let t = match remote.admin().await? {
                Some(mut admin) => admin.tenant(&id).await?,
                None => {
                    let id = TenantId::parse(&id).map_err(|e| anyhow!(e))?;
                    tenants(url).await?.get(&id).await?
                }
            };
            print!("{}", describe(&t));
        }
        TenantCommand::Delete { id, force, remote } => {
            delete_tenant(url, &id, force, &remote).await?
        }
        TenantCommand::Export { id, output, remote } => {
            export_tenant(url, &id, output, &remote).await?
        }
    }
    Ok(())
}

/// `erpsync tenant delete`.
async fn delete_tenant(url: &str, id: &str, force: bool, remote: &Remote) -> anyhow::Result<()> {
    let id = TenantId::parse(id).map_err(|e| anyhow!(e))?;
    let done = match remote.admin().await? {
        Some(mut admin) => admin.delete_tenant(&id, force).await?,
        None => Purge::new(open(url).await?)
            .delete(&id, force)
            .await
            .map_err(|e| anyhow!(e))?,
    };
    if done.deleted {
        println!("tenant {id} deleted: {} rows removed", done.rows);
    } else {
        println!("no tenant {id}: nothing to delete");
    }
    Ok(())
}

/// `erpsync tenant export`: to `output`, or standard output.
async fn export_tenant(
    url: &str,
    id: &str,
    output: Option<std::path::PathBuf>,
    remote: &Remote,
) -> anyhow::Result<()> {
    use std::io::Write;
    let id = TenantId::parse(id).map_err(|e| anyhow!(e))?;
    let mut chunks: ExportChunks = match remote.admin().await? {
        Some(mut admin) => admin.export_tenant(&id).await?,
        None => {
            let chunks = Purge::new(open(url).await?)
                .export(&id)
                .await
                .map_err(|e| anyhow!(e))?;
            Box::pin(ReceiverStream::new(chunks).map(|chunk| chunk.map_err(|e| anyhow!(e))))
        }
    };
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut bytes = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        bytes += chunk.len();
        out.write_all(&chunk).context("writing the export")?;
    }
    out.flush().context("writing the export")?;
    if let Some(path) = output {
        eprintln!("tenant {id} exported to {} ({bytes} bytes)", path.display());
    }
    Ok(())
}

/// A tenant and a View source, as `grant-view-source` and `revoke-view-source` name them.
#[derive(Debug, clap::Args)]
pub struct NamedSource {
    /// Tenant id.
    #[arg(long)]
    id: String,
    /// The source's URL.
    #[arg(
        long,
        required_unless_present = "sqlite_file",
        conflicts_with = "sqlite_file"
    )]
    url: Option<String>,
    /// The source's SQLite file.
    #[arg(long)]
    sqlite_file: Option<std::path::PathBuf>,
}

impl NamedSource {
    /// The tenant, and the source as a URL (a SQLite file as a sqlite:// one).
    fn parse(self) -> anyhow::Result<(TenantId, String)> {
        let id = TenantId::parse(&self.id).map_err(|e| anyhow!(e))?;
        let source = match (self.url, self.sqlite_file) {
            (Some(url), _) => url,
            (None, Some(file)) => format!("sqlite://{}", file.display()),
            (None, None) => anyhow::bail!("give --url or --sqlite-file"),
        };
        Ok((id, source))
    }
}

/// The file `tenant set-view` reads.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ViewFile {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    page_size: Option<u32>,
    tables: Vec<ViewTable>,
}

/// The operator's gate to View sources: no list applies to them, erpsync's own
/// database is refused all the same.
async fn view_admin(db: &Db, url: &str, key: Option<SecretKey>) -> anyhow::Result<ViewAdmin> {
    let access = ViewAccess::new(SourcePolicy::default(), key, url, db.instance_id().await?)?;
    Ok(ViewAdmin::new(db.clone(), access, crate::clock::system()))
}

async fn describe_view(views: &ViewAdmin, id: &TenantId) -> anyhow::Result<String> {
    let status = views.status(id).await?;
    let t = &status;
    let Some(cfg) = &status.config else {
        return Ok(format!(
            "{id}: no View configuration (integration_type: {})\n",
            t.integration_type.as_str()
        ));
    };
    let marks = &status.watermarks;
    let mut out = format!(
        "tenant: {id}\nintegration_type: {}\nurl: {}\npage_size: {}\n",
        t.integration_type.as_str(),
        cfg.redacted_url(),
        cfg.page_size
    );
    for v in &cfg.tables {
        let columns: Vec<String> = v.columns.iter().map(|(f, c)| format!("{f}={c}")).collect();
        out.push_str(&format!(
            "{}: {} ({}), key {}, {}",
            v.table,
            v.view,
            v.mode.as_str(),
            v.key,
            columns.join(", ")
        ));
        if let Some(w) = &v.watermark {
            out.push_str(&format!(", watermark {w}"));
            if let Some((_, at)) = marks.iter().find(|(t, _)| *t == v.table) {
                out.push_str(&format!(" (read up to {at})"));
            }
        }
        if let Some(d) = &v.deleted {
            out.push_str(&format!(", deleted flag {d}"));
        }
        out.push('\n');
    }
    Ok(out)
}

fn describe(t: &Tenant) -> String {
    let schedule = match &t.schedule {
        crate::domain::schedule::Schedule::Daily(times) => times
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        crate::domain::schedule::Schedule::Cron(c) => format!("cron {c}"),
    };
    let next = t
        .next_run_at(Utc::now())
        .map(|at| at.with_timezone(&t.timezone).to_rfc3339())
        .unwrap_or_else(|| "none".into());
    format!(
        "id: {}\nname: {}\ntimezone: {}\nerp: {}\nintegration_type: {}\ndeployment_status: {}\nactive: {}\nscheduled: {}\nschedule: {}\nnext_run: {}\nmax_time_without_success: {}\ndelete_guard: more than {} % and at least {} rows\nabc: {} totals of the last {} months, A below {} %, B below {} %\nlifecycle: new ≤ {} days, active ≤ {} days, inactive after {} days\nabc_shift_guard: {}\nretention: runs {}, abc history {}\nstrict_fields: {}\nbusiness_rule: {}\n",
        t.id,
        t.name,
        t.timezone.name(),
        format!("{} {}", t.erp_name, t.erp_version).trim(),
        t.integration_type.as_str(),
        t.deployment_status.as_str(),
        t.active,
        t.scheduled,
        schedule,
        next,
        crate::domain::text::human_duration(t.max_time_without_success),
        t.delete_guard.percent,
        t.delete_guard.min_rows,
        t.abc.basis.table().as_str(),
        t.abc.window_months,
        t.abc.a_threshold,
        t.abc.b_threshold,
        t.abc.new_days,
        t.abc.active_days,
        t.abc.inactive_days,
        if t.abc.shift_guard {
            format!("hold when more than {} % change class", t.abc.shift_guard_percent)
        } else {
            "off".to_owned()
        },
        kept_days(t.retention.run_history_days),
        kept_days(t.retention.abc_history_days),
        super::client::strict_fields_text(t.strict_fields),
        t.business_rule
    )
}

/// A retention override as `tenant show` prints it.
fn kept_days(days: Option<u32>) -> String {
    days.map_or_else(
        || "the server's default".to_owned(),
        |d| format!("{d} days"),
    )
}

/// `erpsync token …`.
pub async fn token(cmd: TokenCommand, url: &str) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Issue {
            role,
            tenants,
            all_tenants,
            expires_in_days,
            label,
            remote,
        } => {
            let role =
                Role::parse(&role).ok_or_else(|| anyhow!("--role must be crm, erp or admin"))?;
            let tenants = tenants
                .iter()
                .map(|t| TenantId::parse(t).map_err(|e| anyhow!(e)))
                .collect::<anyhow::Result<_>>()?;
            let request = TokenRequest {
                role,
                scope: TenantScope::requested(role, tenants, all_tenants),
                expires_in_days,
                label,
            };
            let (secret, t) = match remote.admin().await? {
                Some(mut admin) => admin.issue_token(request).await?,
                None => {
                    let (new, info) = Tokens::unthrottled(open(url).await?).issue(request).await?;
                    (new.secret, info)
                }
            };
            println!("token_id: {}", t.grant.token_id);
            println!("role: {}", t.grant.role.as_str());
            println!("tenants: {}", scope_text(&t.grant.scope));
            if !t.label.is_empty() {
                println!("label: {}", t.label);
            }
            if let Some(at) = t.expires_at {
                println!("expires: {}", at.to_rfc3339());
            }
            println!("# the token below is shown once; only its salted hash is stored");
            println!("{secret}");
        }
        TokenCommand::Revoke { token, remote } => {
            let revoked = match remote.admin().await? {
                Some(mut admin) => admin.revoke_token(&token).await?,
                None => Tokens::unthrottled(open(url).await?).revoke(&token).await?,
            };
            if !revoked {
                bail!(
                    "no active token matches {}",
                    if token.starts_with("esk_") {
                        "that token"
                    } else {
                        &token
                    }
                );
            }
            println!("revoked");
        }
        TokenCommand::List { remote } => {
            let all = match remote.admin().await? {
                Some(mut admin) => admin.tokens().await?,
                None => Tokens::unthrottled(open(url).await?).list().await?,
            };
            for t in all {
                println!("{}", token_line(&t));
            }
        }
    }
    Ok(())
}

/// A token as `token list` prints it: id, role, tenants, issue time, state, last use,
/// and its label when it has one.
fn token_line(t: &TokenInfo) -> String {
    let state = match (t.revoked_at, t.expires_at) {
        (Some(r), _) => format!("revoked {}", r.to_rfc3339()),
        (None, Some(e)) if e <= Utc::now() => format!("expired {}", e.to_rfc3339()),
        (None, Some(e)) => format!("active, expires {}", e.to_rfc3339()),
        (None, None) => "active".into(),
    };
    let used = t.last_used_at.map_or_else(
        || "never used".into(),
        |u| format!("last used {}", u.to_rfc3339()),
    );
    let label = if t.label.is_empty() {
        String::new()
    } else {
        format!("\tlabel {}", t.label)
    };
    format!(
        "{}\t{}\t{}\tissued {}\t{state}\t{used}{label}",
        t.grant.token_id,
        t.grant.role.as_str(),
        scope_text(&t.grant.scope),
        t.created_at.to_rfc3339(),
    )
}

/// The tenants service over the database at `url` (the server's sink unknown here).
async fn tenants(url: &str) -> anyhow::Result<Tenants> {
    Ok(Tenants::new(open(url).await?, None, crate::clock::system()))
}

fn parse_integration_type(s: &str) -> anyhow::Result<IntegrationType> {
    IntegrationType::parse(s).ok_or_else(|| anyhow!("--integration-type must be api or view"))
}

/// `--table-freshness TABLE=AGE`: the table as written (the settings' rule checks it)
/// and AGE in whole seconds, minutes, hours or days ("24h", "7d", "90min", "3600s").
fn parse_table_age(s: &str) -> Result<FreshnessInput, String> {
    let (table, age) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write TABLE=AGE, e.g. invoice=24h"))?;
    let age = age.trim();
    let split = age.find(|c: char| !c.is_ascii_digit()).unwrap_or(age.len());
    let (n, unit) = age.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        format!("{age:?}: AGE is a whole number and a unit (24h, 7d, 90min, 3600s)")
    })?;
    let unit_secs: i64 = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{age:?}: the unit is s, min, h or d")),
    };
    Ok(FreshnessInput {
        table: table.trim().to_owned(),
        max_age: Some((n.saturating_mul(unit_secs), 0)),
    })
}

/// What `tenant update` changed of the table freshness limits, for a person; None when
/// it changed none.
fn freshness_text(input: &SettingsInput) -> Option<String> {
    let mut parts: Vec<String> = input
        .table_freshness
        .iter()
        .map(|f| {
            let secs = f.max_age.map_or(0, |(s, _)| s);
            format!(
                "{} {}",
                f.table,
                crate::domain::text::human_duration(chrono::Duration::seconds(secs))
            )
        })
        .collect();
    parts.extend(
        input
            .clear_table_freshness
            .iter()
            .map(|t| format!("{t} none")),
    );
    (!parts.is_empty()).then(|| format!("table_freshness: {}", parts.join(", ")))
}

fn parse_deployment_status(s: &str) -> anyhow::Result<DeploymentStatus> {
    DeploymentStatus::parse(s)
        .ok_or_else(|| anyhow!("--deployment-status must be not_started, in_progress or completed"))
}

fn scope_text(scope: &TenantScope) -> String {
    match scope {
        TenantScope::All => "all".into(),
        TenantScope::Listed(ids) => ids
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::view::{validate, ViewConfig, DEFAULT_PAGE_SIZE};

    /// The View configuration file the README shows: the heredoc after its
    /// `view-config-example` marker.
    fn readme_view_file() -> &'static str {
        let readme = include_str!("../../README.md");
        let (_, example) = readme
            .split_once("<!-- view-config-example")
            .expect("the README marks its View configuration example");
        let (_, body) = example
            .split_once("<<'JSON'\n")
            .expect("the example is a heredoc");
        let (json, _) = body.split_once("\nJSON\n").expect("the heredoc ends");
        json
    }

    #[test]
    fn the_readme_view_example_is_a_configuration_set_view_accepts() {
        let file: ViewFile =
            serde_json::from_str(readme_view_file()).expect("the README's view.json parses");
        // As `tenant set-view` completes it: the URL comes from ERPSYNC_VIEW_URL there.
        let cfg = ViewConfig {
            url: file
                .url
                .unwrap_or_else(|| "postgres://leitor:secret@erp-db/erp".into()),
            page_size: file.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            tables: file.tables,
        };
        assert_eq!(validate(&cfg), Ok(()));
        assert!(
            cfg.tables
                .iter()
                .any(|t| t.watermark.is_some() && t.deleted.is_some()),
            "the example shows the watermark and deleted columns"
        );
    }
}
