//! The ERP databases the View reads: a SQLite file ([`SqliteErp`]) with `clientes`, a
//! company view's mapping, and setting acme's View configuration.

use erpsync::grpc::pb::{self, SetViewConfigRequest, ViewMode, ViewTable};
use sqlx::ConnectOptions;

use super::seed::cnpj;
use super::tenants::{authed, Ctx};

/// A SQLite file standing in for an ERP's database, with a writable connection.
pub(crate) struct SqliteErp {
    _dir: tempfile::TempDir,
    pub(crate) url: String,
    conn: sqlx::SqliteConnection,
}

impl SqliteErp {
    /// A new SQLite file in a temporary folder, with `setup` (SQL) run on it.
    pub(crate) async fn new(setup: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("erp.db");
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql(setup).execute(&mut conn).await.unwrap();
        Self {
            url: format!("sqlite://{}", path.display()),
            _dir: dir,
            conn,
        }
    }

    /// Runs `sql` on the ERP's database.
    pub(crate) async fn exec(&mut self, sql: &str) {
        sqlx::raw_sql(sql).execute(&mut self.conn).await.unwrap();
    }
}

/// `clientes`: `n` companies (ids 1..=n), all changed at the same instant.
pub(crate) fn clientes(n: usize) -> String {
    let mut sql = String::from(
        "CREATE TABLE clientes (id INTEGER PRIMARY KEY, razao TEXT NOT NULL, cnpj TEXT NOT NULL, \
         cidade VARCHAR(40), fundada_em DATE, alterado_em TEXT NOT NULL, excluido INTEGER NOT NULL DEFAULT 0); \
         CREATE VIEW v_clientes AS SELECT id, razao, cnpj, cidade, fundada_em, alterado_em, excluido FROM clientes;",
    );
    for i in 1..=n {
        sql.push_str(&format!(
            "INSERT INTO clientes (id, razao, cnpj, cidade, fundada_em, alterado_em) VALUES \
             ({i}, 'Cliente {i} Ltda', '{}', 'Curitiba', '2001-02-03', '2026-01-01 10:00:00');",
            cnpj(i as u64)
        ));
    }
    sql
}

/// Acme's company table read from `view` in `mode` (key `id`; name, document and city
/// from razao, cnpj, cidade; incremental on `alterado_em`).
pub(crate) fn company_view(view: &str, mode: ViewMode) -> ViewTable {
    ViewTable {
        table: "company".into(),
        view: view.into(),
        mode: mode as i32,
        key_column: "id".into(),
        columns: [("name", "razao"), ("document", "cnpj"), ("city", "cidade")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
        watermark_column: if mode == ViewMode::Incremental {
            "alterado_em".into()
        } else {
            String::new()
        },
        deleted_column: String::new(),
        watermark: String::new(),
    }
}

/// SetViewConfig of acme with the source `url`, `tables` and `page_size` (no check, no clear).
pub(crate) async fn set_view(
    ctx: &mut Ctx,
    url: Option<&str>,
    tables: Vec<ViewTable>,
    page_size: u32,
) -> Result<pb::ViewConfig, tonic::Status> {
    ctx.history
        .set_view_config(authed(
            SetViewConfigRequest {
                tenant_id: "acme".into(),
                url: url.map(str::to_owned),
                tables,
                page_size,
                check: false,
                clear: false,
            },
            &ctx.crm,
        ))
        .await
        .map(|r| r.into_inner())
}
