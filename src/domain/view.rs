//! The View integration type (docs/design.md: collect): erpsync reads SQL views the ERP exposes
//! in its own database. This module holds the per-tenant configuration and its rules:
//! which database (a read-only connection URL), and per ERP table the view, the column
//! that holds each erpsync field, and the mode (full snapshot or incremental by a
//! watermark column). Everything here is plain Rust; the reading is in `crate::viewdb`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::Kind;
use super::secret::redact_url;
use super::tables::{self, Table, TableDef};
use crate::error::FieldViolation;

/// Rows read per page (and staged per request-log entry) unless the configuration says.
pub const DEFAULT_PAGE_SIZE: u32 = 1_000;
/// The largest page a configuration may ask for.
pub const MAX_PAGE_SIZE: u32 = 10_000;
/// Longest identifier (view, schema or column name) accepted.
const MAX_IDENT: usize = 63;

/// The database kinds a View integration reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `sqlite:` (a file the ERP shares).
    Sqlite,
}

impl Backend {
    /// The backend named by a connection URL's scheme.
    pub fn of_url(url: &str) -> Result<Self, String> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            Some("sqlite") => Ok(Self::Sqlite),
            _ => Err(format!(
                "unsupported database URL {}: use postgres://, mysql:// (MariaDB too) or sqlite:",
                redact_url(url)
            )),
        }
    }

    /// Lower-case name, for messages and the admin answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    /// `name` quoted as an identifier; `schema.name` has each part quoted.
    pub fn quote(self, name: &str) -> String {
        name.split('.')
            .map(|part| match self {
                Self::MySql => format!("`{part}`"),
                _ => format!("\"{part}\""),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// How a view is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every row at every run; staged rows the view no longer returns are deletions
    /// (held by the delete guard when too many).
    #[default]
    Full,
    /// Only rows whose watermark column passed the last one read.
    Incremental,
}

impl Mode {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
        }
    }

    /// Parses "full" or "incremental", in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Some(Self::Full),
            "incremental" => Some(Self::Incremental),
            _ => None,
        }
    }
}

/// One ERP table read from a view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewTable {
    /// The erpsync table id (company, order, …).
    pub table: String,
    /// The view (or table) name, optionally `schema.view`.
    pub view: String,
    /// Full snapshot (default) or incremental.
    #[serde(default)]
    pub mode: Mode,
    /// The column holding the record's external id: unique, and ideally indexed (pages
    /// are read by it).
    pub key: String,
    /// erpsync field → view column.
    pub columns: BTreeMap<String, String>,
    /// The record's last change (`updated_at`); required for incremental mode, where rows
    /// are read in its order from the last value seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// A column that marks a row deleted (true, 1, 't', 'y', 's', 'sim'): the record is
    /// deleted from the CRM. The only way incremental mode sees deletions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

/// A tenant's View configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewConfig {
    /// Connection URL of the ERP's database, with its secrets: stored, never shown.
    pub url: String,
    /// Rows per page (default 1000, at most 10 000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// The tables read, in order.
    pub tables: Vec<ViewTable>,
}

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

impl ViewConfig {
    /// The database kind of the URL (checked by [`validate`]).
    pub fn backend(&self) -> Result<Backend, String> {
        Backend::of_url(&self.url)
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// Whether `name` is an identifier erpsync will put in a query: letters, digits, `_` and
/// `$`, not starting with a digit; `schema.name` when `qualified`.
fn ident_problem(name: &str, qualified: bool) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 1 + usize::from(qualified) {
        return Some(format!(
            "{name:?} has too many dots: use {}",
            if qualified {
                "view or schema.view"
            } else {
                "a column name"
            }
        ));
    }
    for part in parts {
        let mut chars = part.chars();
        let ok_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !ok_start
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
            || part.len() > MAX_IDENT
        {
            return Some(format!(
                "{name:?} is not a plain identifier: letters, digits, '_' or '$', not starting \
                 with a digit, at most {MAX_IDENT} characters"
            ));
        }
    }
    None
}

/// Checks a configuration; every problem is reported with the field path it is in
/// (`tables[0].columns.name`).
pub fn validate(cfg: &ViewConfig) -> Result<(), Vec<FieldViolation>> {
    let mut v = Vec::new();
    if let Err(e) = Backend::of_url(&cfg.url) {
        v.push(FieldViolation::new("url", e));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&cfg.page_size) {
        v.push(FieldViolation::new(
            "page_size",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    if cfg.tables.is_empty() {
        v.push(FieldViolation::new(
            "tables",
            "configure at least one table (table, view, key, columns)",
        ));
    }
    let mut seen = BTreeMap::new();
    for (i, t) in cfg.tables.iter().enumerate() {
        let at = |f: &str| format!("tables[{i}].{f}");
        let Some(def) = tables::find(&t.table) else {
            let valid: Vec<&str> = tables::TABLES.iter().map(|t| t.id).collect();
            v.push(FieldViolation::new(
                at("table"),
                format!(
                    "unknown table {:?}: valid tables are {}",
                    t.table,
                    valid.join(", ")
                ),
            ));
            continue;
        };
        if let Some(first) = seen.insert(t.table.as_str(), i) {
            v.push(FieldViolation::new(
                at("table"),
                format!("{:?} is configured twice (also tables[{first}])", t.table),
            ));
        }
        if let Some(p) = ident_problem(&t.view, true) {
            v.push(FieldViolation::new(at("view"), p));
        }
        if let Some(p) = ident_problem(&t.key, false) {
            v.push(FieldViolation::new(at("key"), p));
        }
        for (field, column) in &t.columns {
            if def.field(field).is_none() {
                v.push(FieldViolation::new(
                    at(&format!("columns.{field}")),
                    not_a_field(def, field),
                ));
            }
            if let Some(p) = ident_problem(column, false) {
                v.push(FieldViolation::new(at(&format!("columns.{field}")), p));
            }
        }
        for required in def.required_fields {
            if !t.columns.contains_key(*required) {
                v.push(FieldViolation::new(
                    at("columns"),
                    format!("{} requires {required:?}: map it to a column", def.id),
                ));
            }
        }
        for (name, col) in [("watermark", &t.watermark), ("deleted", &t.deleted)] {
            if let Some(p) = col.as_deref().and_then(|c| ident_problem(c, false)) {
                v.push(FieldViolation::new(at(name), p));
            }
        }
        if t.mode == Mode::Incremental && t.watermark.is_none() {
            v.push(FieldViolation::new(
                at("watermark"),
                "incremental mode needs a watermark column (the rows' updated_at)",
            ));
        }
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(v)
    }
}

/// What a view column holds, from its declared SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Character types.
    Text,
    /// Integer types.
    Integer,
    /// Exact or floating-point numbers.
    Number,
    /// A date.
    Date,
    /// A date-time without a zone (read in the tenant's zone).
    Timestamp,
    /// A date-time with a zone (an instant).
    TimestampTz,
    /// A boolean.
    Bool,
    /// A UUID.
    Uuid,
    /// Nothing declared (a SQLite expression column): every value is checked on its own.
    Untyped,
    /// Anything else (binary, JSON, arrays, money, …): never mapped.
    Other,
}

impl Category {
    /// Classifies a declared type as the database's catalog spells it.
    pub fn of(backend: Backend, declared: &str) -> Self {
        let t = declared.trim().to_ascii_lowercase();
        match backend {
            Backend::Postgres => match t.as_str() {
                "text" | "character varying" | "character" | "name" | "citext" => Self::Text,
                "smallint" | "integer" | "bigint" => Self::Integer,
                "numeric" | "real" | "double precision" => Self::Number,
                "date" => Self::Date,
                "timestamp without time zone" => Self::Timestamp,
                "timestamp with time zone" => Self::TimestampTz,
                "boolean" => Self::Bool,
                "uuid" => Self::Uuid,
                _ => Self::Other,
            },
            Backend::MySql => match t.as_str() {
                "varchar" | "char" | "text" | "tinytext" | "mediumtext" | "longtext" | "enum"
                | "set" => Self::Text,
                "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                    Self::Integer
                }
                "decimal" | "numeric" | "float" | "double" | "real" => Self::Number,
                "date" => Self::Date,
                "datetime" => Self::Timestamp,
                "timestamp" => Self::TimestampTz,
                "bool" | "boolean" | "bit" => Self::Bool,
                "uuid" => Self::Uuid,
                _ => Self::Other,
            },
            // SQLite's affinity rules (https://sqlite.org/datatype3.html §3.1), with the
            // date names ERPs use on top.
            Backend::Sqlite => {
                if t.is_empty() {
                    Self::Untyped
                } else if t.contains("int") {
                    Self::Integer
                } else if t.contains("char") || t.contains("clob") || t.contains("text") {
                    Self::Text
                } else if t.contains("blob") {
                    Self::Other
                } else if t.starts_with("bool") {
                    Self::Bool
                } else if t == "date" {
                    Self::Date
                } else if t.contains("date") || t.contains("time") {
                    Self::Timestamp
                } else {
                    Self::Number
                }
            }
        }
    }

    /// How the catalog's type is shown in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::TimestampTz => "timestamp with time zone",
            Self::Bool => "boolean",
            Self::Uuid => "uuid",
            Self::Untyped => "untyped",
            Self::Other => "unsupported",
        }
    }
}

/// Why a mapping of `field` is refused for `def`'s table: the fields it accepts, and
/// the tables that have such a field when it is another table's (a common slip when one
/// view serves several tables).
fn not_a_field(def: &TableDef, field: &str) -> String {
    let elsewhere: Vec<&str> = tables::TABLES
        .iter()
        .filter(|t| t.field(field).is_some())
        .map(|t| t.id)
        .collect();
    let mut reason = format!(
        "{field:?} is not a field of {}: it accepts {}",
        def.id,
        def.accepted_fields()
    );
    if !elsewhere.is_empty() {
        reason.push_str(&format!(
            " ({field:?} is a field of {})",
            elsewhere.join(", ")
        ));
    }
    reason
}

/// What a column is used for, which decides the SQL types it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The external id.
    Key,
    /// A field of the given kind.
    Field(Kind),
    /// The watermark / `updated_at`.
    Watermark,
    /// The deleted flag.
    Deleted,
}

impl Role {
    /// Whether a column of category `c` can serve this role; values are still validated
    /// one by one, like pushed records.
    pub fn accepts(self, c: Category) -> bool {
        use Category::*;
        if c == Untyped {
            return true;
        }
        match self {
            Role::Key => matches!(c, Text | Integer | Number | Uuid),
            Role::Field(kind) => match kind {
                Kind::Text | Kind::Code | Kind::Ref(_) => matches!(c, Text | Integer | Uuid),
                Kind::Cnpj | Kind::Cpf | Kind::CnpjOrCpf => matches!(c, Text | Integer | Number),
                Kind::Date => matches!(c, Date | Timestamp | TimestampTz | Text),
                Kind::Money | Kind::NonNegativeMoney | Kind::Quantity | Kind::Fraction => {
                    matches!(c, Integer | Number | Text)
                }
            },
            Role::Watermark => matches!(c, Date | Timestamp | TimestampTz | Text),
            Role::Deleted => matches!(c, Bool | Integer | Text),
        }
    }

    /// What the role needs, for the message when a column does not fit.
    pub fn wants(self) -> &'static str {
        match self {
            Role::Key => "text, integer or uuid",
            Role::Field(kind) => match kind {
                Kind::Text | Kind::Code | Kind::Ref(_) => "text, integer or uuid",
                Kind::Cnpj | Kind::Cpf | Kind::CnpjOrCpf => "text or a number",
                Kind::Date => "date, timestamp or text",
                _ => "a number or text",
            },
            Role::Watermark => "date, timestamp or text",
            Role::Deleted => "boolean, integer or text",
        }
    }
}

/// The role of a mapped field of `table`.
pub fn field_role(table: &str, field: &str) -> Role {
    Table::parse(table)
        .and_then(|t| t.def().field(field))
        .map_or(Role::Field(Kind::Text), |f| Role::Field(f.kind))
}

/// Whether a deleted-flag value means deleted.
pub fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "t" | "y" | "yes" | "s" | "sim"
    )
}

/// A View read's position, as stored between runs.
/// A key value bound to a View query.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text (cast to the column's type on PostgreSQL).
    Text(String),
    /// A SQLite integer key.
    Int(i64),
    /// A SQLite real key.
    Real(f64),
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    /// The watermark's plain text (incremental reads).
    pub watermark: Option<String>,
    /// The key.
    pub key: Param,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company() -> ViewTable {
        ViewTable {
            table: "company".into(),
            view: "erp.v_company".into(),
            mode: Mode::Full,
            key: "id".into(),
            columns: BTreeMap::from([
                ("name".to_owned(), "razao_social".to_owned()),
                ("document".to_owned(), "cnpj".to_owned()),
            ]),
            watermark: None,
            deleted: None,
        }
    }

    fn config(tables: Vec<ViewTable>) -> ViewConfig {
        ViewConfig {
            url: "postgres://erp:s3cret@db.example:5432/erp?sslmode=require".into(),
            page_size: DEFAULT_PAGE_SIZE,
            tables,
        }
    }

    #[test]
    fn a_good_configuration_passes() {
        let mut order = company();
        order.table = "order".into();
        order.mode = Mode::Incremental;
        order.watermark = Some("updated_at".into());
        order.columns = BTreeMap::from([
            ("company_id".to_owned(), "customer_id".to_owned()),
            ("issued_at".to_owned(), "order_date".to_owned()),
            ("total".to_owned(), "total".to_owned()),
        ]);
        assert_eq!(validate(&config(vec![company(), order])), Ok(()));
    }

    #[test]
    fn a_field_of_another_table_is_refused_with_this_tables_fields() {
        let mut c = company();
        c.columns.insert("total".into(), "valor".into());
        let problems = validate(&config(vec![c])).unwrap_err();
        let reason = problems
            .iter()
            .find(|v| v.field.ends_with("columns.total"))
            .map(|v| v.description.clone())
            .unwrap_or_default();
        assert_eq!(
            reason,
            "\"total\" is not a field of company: it accepts name, document, seller_id, city, \
             state, email, phone (\"total\" is a field of quote, order, invoice)"
        );
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let mut bad = company();
        bad.view = "x; DROP TABLE y".into();
        bad.columns.remove("document");
        bad.columns.insert("nme".into(), "name".into());
        bad.mode = Mode::Incremental;
        let mut twice = company();
        twice.key = "1id".into();
        let mut unknown = company();
        unknown.table = "produto".into();
        let mut cfg = config(vec![bad, twice, unknown]);
        cfg.url = "oracle://x".into();
        cfg.page_size = 0;
        let fields: Vec<String> = validate(&cfg)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(
            fields,
            [
                "url",
                "page_size",
                "tables[0].view",
                "tables[0].columns.nme",
                "tables[0].columns",
                "tables[0].watermark",
                "tables[1].table",
                "tables[1].key",
                "tables[2].table"
            ]
        );
        assert!(validate(&config(vec![])).is_err());
    }

    #[test]
    fn column_types_fit_their_roles() {
        let pg = |t| Category::of(Backend::Postgres, t);
        assert!(field_role("order", "total").accepts(pg("numeric")));
        assert!(!field_role("order", "total").accepts(pg("date")));
        assert!(!field_role("order", "issued_at").accepts(pg("numeric")));
        assert!(field_role("order", "issued_at").accepts(pg("timestamp with time zone")));
        assert!(Role::Key.accepts(pg("character")));
        assert!(!Role::Key.accepts(pg("bytea")));
        let my = |t| Category::of(Backend::MySql, t);
        assert_eq!(my("DATETIME"), Category::Timestamp);
        assert!(field_role("company", "name").accepts(my("varchar")));
        let lite = |t| Category::of(Backend::Sqlite, t);
        assert_eq!(lite(""), Category::Untyped);
        assert_eq!(lite("VARCHAR(40)"), Category::Text);
        assert_eq!(lite("DECIMAL(10,2)"), Category::Number);
        assert!(field_role("order", "total").accepts(lite("")));
    }

    #[test]
    fn deleted_flags() {
        for v in ["1", "true", "T", "sim", " y "] {
            assert!(truthy(v), "{v}");
        }
        for v in ["0", "false", "", "no", "n"] {
            assert!(!truthy(v), "{v}");
        }
    }
}
