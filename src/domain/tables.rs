//! The catalog of ERP tables (DESIGN §4): the ids ERPs push to and the Histórico checkboxes.

/// One ERP table erpsync accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// The id used in requests and in `POST /erp/v1/{table}`.
    pub id: &'static str,
    /// The pt-BR label of the Histórico checkbox.
    pub label: &'static str,
    /// What the table holds.
    pub description: &'static str,
    /// Fields every record must carry besides `external_id`.
    pub required_fields: &'static [&'static str],
    /// Records older than this many days are accepted but not synced; 0 means no window.
    pub window_days: u32,
}

const TWO_YEARS: u32 = 730;

/// The largest row count erpsync takes (a ReportCounts count, a delete-guard threshold):
/// no ERP table holds a trillion rows, so a larger number is a mistake, not a count.
pub const MAX_ROW_COUNT: u64 = 1_000_000_000_000;

/// Every ERP table, in the order the Histórico tab lists them.
pub const TABLES: &[TableDef] = &[
    TableDef {
        id: "company",
        label: "Empresa",
        description: "Customers that are legal persons (CNPJ).",
        required_fields: &["name", "document"],
        window_days: 0,
    },
    TableDef {
        id: "contact",
        label: "Contato",
        description: "Customers that are natural persons; the CPF is validated when present.",
        required_fields: &["name"],
        window_days: 0,
    },
    TableDef {
        id: "quote",
        label: "Cotação",
        description: "Quotes sent to customers.",
        required_fields: &["company_id", "issued_at", "total"],
        window_days: 0,
    },
    TableDef {
        id: "quote_item",
        label: "Itens cotação",
        description: "Lines of a quote.",
        required_fields: &["quote_id", "product_code", "quantity", "unit_price"],
        window_days: 0,
    },
    TableDef {
        id: "order",
        label: "Pedido",
        description: "Sales orders of the last 2 years.",
        required_fields: &["company_id", "issued_at", "total"],
        window_days: TWO_YEARS,
    },
    TableDef {
        id: "order_item",
        label: "Itens pedido",
        description: "Lines of a sales order, last 2 years.",
        required_fields: &["order_id", "product_code", "quantity", "unit_price"],
        window_days: TWO_YEARS,
    },
    TableDef {
        id: "invoice",
        label: "Nota",
        description: "Fiscal invoices (NF-e) of the last 2 years.",
        required_fields: &["company_id", "issued_at", "total"],
        window_days: TWO_YEARS,
    },
    TableDef {
        id: "invoice_item",
        label: "Itens nota",
        description: "Lines of a fiscal invoice, last 2 years.",
        required_fields: &["invoice_id", "product_code", "quantity", "unit_price"],
        window_days: TWO_YEARS,
    },
    TableDef {
        id: "receivable",
        label: "Fatura",
        description: "Open receivables (duplicatas).",
        required_fields: &["company_id", "due_date", "amount"],
        window_days: 0,
    },
    TableDef {
        id: "supplier",
        label: "Fornecedor",
        description: "Suppliers.",
        required_fields: &["name", "document"],
        window_days: 0,
    },
    TableDef {
        id: "seller",
        label: "Vendedor",
        description: "Sales people; a company's seller is its portfolio (carteira).",
        required_fields: &["name"],
        window_days: 0,
    },
    TableDef {
        id: "company_brand",
        label: "Empresa marca",
        description: "Commercial status of a company for each brand.",
        required_fields: &["company_id", "brand", "status"],
        window_days: 0,
    },
];

/// Looks a table up by its id.
pub fn find(id: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.id == id)
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
}
