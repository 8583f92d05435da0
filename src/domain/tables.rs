//! The catalog of ERP tables (DESIGN §4): the ids ERPs push to, the Histórico checkboxes,
//! and each table's fields — one schema, from which the required fields and the field
//! kinds validation applies are both read.

use std::fmt;

/// One ERP table erpsync accepts. Its id ([`Table::as_str`]) is what requests, the
/// database's `table_name` columns, logs and the proto name it by; inside erpsync a table
/// is this enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Customers that are legal persons.
    Company,
    /// Customers that are natural persons.
    Contact,
    /// Quotes.
    Quote,
    /// Lines of a quote.
    QuoteItem,
    /// Sales orders.
    Order,
    /// Lines of a sales order.
    OrderItem,
    /// Fiscal invoices.
    Invoice,
    /// Lines of a fiscal invoice.
    InvoiceItem,
    /// Open receivables.
    Receivable,
    /// Suppliers.
    Supplier,
    /// Sales people.
    Seller,
    /// A company's commercial status per brand.
    CompanyBrand,
}

impl Table {
    /// Every table, in the order the Histórico tab lists them.
    pub const ALL: [Table; 12] = [
        Table::Company,
        Table::Contact,
        Table::Quote,
        Table::QuoteItem,
        Table::Order,
        Table::OrderItem,
        Table::Invoice,
        Table::InvoiceItem,
        Table::Receivable,
        Table::Supplier,
        Table::Seller,
        Table::CompanyBrand,
    ];

    /// The tables delivered to the CRM (and watched by the delete guard), in push order.
    pub const CRM: [Table; 2] = [Table::Company, Table::Contact];

    /// The table's id, as requests and stored rows name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Table::Company => "company",
            Table::Contact => "contact",
            Table::Quote => "quote",
            Table::QuoteItem => "quote_item",
            Table::Order => "order",
            Table::OrderItem => "order_item",
            Table::Invoice => "invoice",
            Table::InvoiceItem => "invoice_item",
            Table::Receivable => "receivable",
            Table::Supplier => "supplier",
            Table::Seller => "seller",
            Table::CompanyBrand => "company_brand",
        }
    }

    /// The table an id names; `None` for an id not in the catalog.
    pub fn parse(id: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.as_str() == id)
    }

    /// The table's definition in the catalog.
    pub fn def(self) -> &'static TableDef {
        &TABLES[self as usize]
    }

    /// Whether the table is delivered to the CRM (companies and contacts).
    pub fn is_crm(self) -> bool {
        Table::CRM.contains(&self)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of value a known field holds, which decides how it is checked and normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string, trimmed, at most 1000 characters.
    Text,
    /// Like `Text`, but a JSON integer is also accepted (ERPs send numeric product codes).
    Code,
    /// The external id of another record: a string of at most 200 characters or a JSON integer.
    Ref,
    /// A date or date-time, see [`parse_date`](crate::domain::record::parse_date).
    Date,
    /// An exact decimal amount that may be negative (credit notes).
    Money,
    /// An exact decimal amount that must not be negative.
    NonNegativeMoney,
    /// An exact decimal quantity that must not be negative.
    Quantity,
    /// An exact decimal between 0 and 1 inclusive (0.15 means 15%).
    Fraction,
    /// A Brazilian company registration number (14 digits).
    Cnpj,
    /// A Brazilian individual taxpayer number (11 digits).
    Cpf,
    /// A CNPJ (14 digits) or a CPF (11 digits), told apart by the number of digits.
    CnpjOrCpf,
}

/// One known field of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The field's name in a record.
    pub name: &'static str,
    /// How its value is checked and normalized.
    pub kind: Kind,
    /// Every record must carry it (besides `external_id`).
    pub required: bool,
}

/// One ERP table's definition in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// The table.
    pub table: Table,
    /// The id used in requests and in `POST /erp/v1/{table}`: `table.as_str()`.
    pub id: &'static str,
    /// The pt-BR label of the Histórico checkbox.
    pub label: &'static str,
    /// What the table holds.
    pub description: &'static str,
    /// The known fields, in the order problems with them are reported.
    pub fields: &'static [Field],
    /// The names of the required fields among `fields`, in their order; derived from
    /// `fields` when the catalog is compiled.
    pub required_fields: &'static [&'static str],
    /// Records older than this many days are accepted but not synced; 0 means no window.
    pub window_days: u32,
}

impl TableDef {
    /// The known field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const fn count_required(fields: &[Field]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < fields.len() {
        if fields[i].required {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn required_names<const N: usize>(fields: &[Field]) -> [&'static str; N] {
    let mut names = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < fields.len() {
        if fields[i].required {
            names[n] = fields[i].name;
            n += 1;
        }
        i += 1;
    }
    names
}

/// A catalog entry: `$fields` is written once, and its required names are read from it
/// at compile time.
macro_rules! table_def {
    ($table:expr, $label:expr, $description:expr, $window_days:expr, $fields:expr $(,)?) => {{
        const FIELDS: &[Field] = $fields;
        const REQUIRED: &[&str] = &required_names::<{ count_required(FIELDS) }>(FIELDS);
        TableDef {
            table: $table,
            id: $table.as_str(),
            label: $label,
            description: $description,
            fields: FIELDS,
            required_fields: REQUIRED,
            window_days: $window_days,
        }
    }};
}

const TWO_YEARS: u32 = 730;

/// The largest row count erpsync takes (a ReportCounts count, a delete-guard threshold):
/// no ERP table holds a trillion rows, so a larger number is a mistake, not a count.
pub const MAX_ROW_COUNT: u64 = 1_000_000_000_000;

/// Every ERP table, in the order the Histórico tab lists them ([`Table::ALL`]'s order).
pub const TABLES: &[TableDef] = {
    use Kind::*;
    &[
        table_def!(
            Table::Company,
            "Empresa",
            "Customers that are legal persons (CNPJ).",
            0,
            &[
                required("name", Text),
                required("document", Cnpj),
                optional("seller_id", Ref),
                optional("city", Text),
                optional("state", Text),
                optional("email", Text),
                optional("phone", Text),
            ],
        ),
        table_def!(
            Table::Contact,
            "Contato",
            "Customers that are natural persons; the CPF is validated when present.",
            0,
            &[
                required("name", Text),
                optional("document", Cpf),
                optional("company_id", Ref),
                optional("email", Text),
                optional("phone", Text),
            ],
        ),
        table_def!(
            Table::Quote,
            "Cotação",
            "Quotes sent to customers.",
            0,
            &[
                required("company_id", Ref),
                required("issued_at", Date),
                required("total", NonNegativeMoney),
                optional("seller_id", Ref),
            ],
        ),
        table_def!(
            Table::QuoteItem,
            "Itens cotação",
            "Lines of a quote.",
            0,
            &[
                required("quote_id", Ref),
                required("product_code", Code),
                required("quantity", Quantity),
                required("unit_price", NonNegativeMoney),
                optional("discount", Fraction),
            ],
        ),
        table_def!(
            Table::Order,
            "Pedido",
            "Sales orders of the last 2 years.",
            TWO_YEARS,
            &[
                required("company_id", Ref),
                required("issued_at", Date),
                required("total", NonNegativeMoney),
                optional("seller_id", Ref),
                optional("status", Text),
            ],
        ),
        table_def!(
            Table::OrderItem,
            "Itens pedido",
            "Lines of a sales order, last 2 years.",
            TWO_YEARS,
            &[
                required("order_id", Ref),
                required("product_code", Code),
                required("quantity", Quantity),
                required("unit_price", NonNegativeMoney),
                optional("discount", Fraction),
            ],
        ),
        // Credit notes (devoluções) carry negative totals, so the sign is free here.
        table_def!(
            Table::Invoice,
            "Nota",
            "Fiscal invoices (NF-e) of the last 2 years.",
            TWO_YEARS,
            &[
                required("company_id", Ref),
                required("issued_at", Date),
                required("total", Money),
                optional("seller_id", Ref),
                optional("number", Text),
            ],
        ),
        table_def!(
            Table::InvoiceItem,
            "Itens nota",
            "Lines of a fiscal invoice, last 2 years.",
            TWO_YEARS,
            &[
                required("invoice_id", Ref),
                required("product_code", Code),
                required("quantity", Quantity),
                required("unit_price", NonNegativeMoney),
                optional("discount", Fraction),
            ],
        ),
        table_def!(
            Table::Receivable,
            "Fatura",
            "Open receivables (duplicatas).",
            0,
            &[
                required("company_id", Ref),
                required("due_date", Date),
                required("amount", NonNegativeMoney),
                optional("paid_at", Date),
            ],
        ),
        table_def!(
            Table::Supplier,
            "Fornecedor",
            "Suppliers.",
            0,
            &[required("name", Text), required("document", CnpjOrCpf)],
        ),
        table_def!(
            Table::Seller,
            "Vendedor",
            "Sales people; a company's seller is its portfolio (carteira).",
            0,
            &[required("name", Text), optional("email", Text)],
        ),
        table_def!(
            Table::CompanyBrand,
            "Empresa marca",
            "Commercial status of a company for each brand.",
            0,
            &[
                required("company_id", Ref),
                required("brand", Text),
                required("status", Text),
            ],
        ),
    ]
};

/// Looks a table up by its id.
pub fn find(id: &str) -> Option<&'static TableDef> {
    Table::parse(id).map(Table::def)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_has_the_twelve_tables_with_unique_ids() {
        let mut ids: Vec<_> = TABLES.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 12);
        assert_eq!(find("order_item").map(|t| t.label), Some("Itens pedido"));
        assert!(find("orders").is_none());
    }

    #[test]
    fn each_table_is_its_catalog_entry_in_histórico_order() {
        assert_eq!(TABLES.len(), Table::ALL.len());
        for (def, table) in TABLES.iter().zip(Table::ALL) {
            assert_eq!(def.table, table);
            assert_eq!(def.id, table.as_str());
            assert_eq!(table.def(), def);
            assert_eq!(Table::parse(table.as_str()), Some(table));
            assert_eq!(table.to_string(), table.as_str());
        }
        assert_eq!(Table::parse("Company"), None);
        assert_eq!(Table::parse(""), None);
    }

    #[test]
    fn required_fields_are_the_required_ones_among_the_fields_in_their_order() {
        for def in TABLES {
            let names: Vec<&str> = def
                .fields
                .iter()
                .filter(|f| f.required)
                .map(|f| f.name)
                .collect();
            assert_eq!(def.required_fields, names.as_slice(), "{}", def.id);
        }
        assert_eq!(Table::Company.def().required_fields, ["name", "document"]);
        assert_eq!(
            Table::CompanyBrand.def().required_fields,
            ["company_id", "brand", "status"]
        );
    }
}
