//! The catalog of ERP tables (docs/design.md, "The ERP tables"): the ids ERPs push to,
//! the Histórico checkboxes, and each table's fields — one schema, from which
//! validation, ListTables' catalogue, the OpenAPI document and the host guide are read.

use std::fmt;

pub use super::language::Language;

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
    /// The external id of a record of the given table: a string of at most 200 characters
    /// or a JSON integer.
    Ref(Table),
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

impl Kind {
    /// The kind's name in the catalogue (ListTables, the OpenAPI document, the host guide).
    pub const fn type_name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Code => "code",
            Kind::Ref(_) => "reference",
            Kind::Date => "date",
            Kind::Money => "money",
            Kind::NonNegativeMoney => "non_negative_money",
            Kind::Quantity => "quantity",
            Kind::Fraction => "fraction",
            Kind::Cnpj => "cnpj",
            Kind::Cpf => "cpf",
            Kind::CnpjOrCpf => "cnpj_or_cpf",
        }
    }

    /// The table a reference points to; `None` for the other kinds.
    pub const fn references(self) -> Option<Table> {
        match self {
            Kind::Ref(t) => Some(t),
            _ => None,
        }
    }

    /// What a value of this kind looks like, for a person configuring an ERP.
    pub const fn format(self) -> Words {
        match self {
            Kind::Text => words(
                "texto, até 1000 caracteres",
                "text, at most 1000 characters",
            ),
            Kind::Code => words(
                "código: texto (até 1000 caracteres) ou número inteiro",
                "code: text (at most 1000 characters) or a whole number",
            ),
            Kind::Ref(_) => words(
                "o external_id de um registro da tabela referenciada: texto (até 200 caracteres) ou número inteiro",
                "the external_id of a record of the referenced table: text (at most 200 characters) or a whole number",
            ),
            Kind::Date => words(
                "data: AAAA-MM-DD, DD/MM/AAAA ou data-hora ISO 8601; sem fuso, vale o fuso do tenant",
                "date: YYYY-MM-DD, DD/MM/YYYY or an ISO 8601 date-time; without an offset, the tenant's zone",
            ),
            Kind::Money => words(
                "valor decimal exato, pode ser negativo (devoluções); separador . ou , (envie como texto)",
                "exact decimal amount, may be negative (credit notes); . or , as separator (send it as a string)",
            ),
            Kind::NonNegativeMoney => words(
                "valor decimal exato, não negativo; separador . ou , (envie como texto)",
                "exact decimal amount, not negative; . or , as separator (send it as a string)",
            ),
            Kind::Quantity => words(
                "quantidade decimal exata, não negativa",
                "exact decimal quantity, not negative",
            ),
            Kind::Fraction => words(
                "fração decimal entre 0 e 1 (0,15 = 15%)",
                "decimal fraction between 0 and 1 (0.15 = 15%)",
            ),
            Kind::Cnpj => words(
                "CNPJ (14 caracteres, com ou sem pontuação; dígitos verificadores conferidos), como texto",
                "CNPJ (14 characters, punctuation optional; check digits verified), as a string",
            ),
            Kind::Cpf => words(
                "CPF (11 dígitos, com ou sem pontuação; dígitos verificadores conferidos), como texto",
                "CPF (11 digits, punctuation optional; check digits verified), as a string",
            ),
            Kind::CnpjOrCpf => words(
                "CNPJ (14) ou CPF (11), distinguidos pelo tamanho, como texto",
                "CNPJ (14) or CPF (11), told apart by length, as a string",
            ),
        }
    }
}

/// A text in each language erpsync answers in (see [`Language`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Words {
    /// Brazilian Portuguese, the page's language and the default.
    pub pt_br: &'static str,
    /// English.
    pub en: &'static str,
}

impl Words {
    /// The text in `language`.
    pub const fn get(self, language: Language) -> &'static str {
        match language {
            Language::PtBr => self.pt_br,
            Language::En => self.en,
        }
    }
}

const fn words(pt_br: &'static str, en: &'static str) -> Words {
    Words { pt_br, en }
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
    /// What it holds.
    pub description: Words,
}

/// One ERP table's definition in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    /// The table.
    pub table: Table,
    /// The id used in requests and in `POST /erp/v1/{table}`: `table.as_str()`.
    pub id: &'static str,
    /// The label of the Histórico checkbox (pt-BR: "Empresa").
    pub label: Words,
    /// What the table holds.
    pub description: Words,
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

    /// The names of its fields, as messages list them: "name, document, seller_id, …".
    pub fn accepted_fields(&self) -> String {
        let names: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
        names.join(", ")
    }
}

const fn required(name: &'static str, kind: Kind, pt_br: &'static str, en: &'static str) -> Field {
    Field {
        name,
        kind,
        required: true,
        description: words(pt_br, en),
    }
}

const fn optional(name: &'static str, kind: Kind, pt_br: &'static str, en: &'static str) -> Field {
    Field {
        name,
        kind,
        required: false,
        description: words(pt_br, en),
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

// Fields several tables share, described once.
const SELLER: Field = optional(
    "seller_id",
    Kind::Ref(Table::Seller),
    "Vendedor responsável (a carteira).",
    "The seller in charge (the portfolio).",
);
const COMPANY: Field = required(
    "company_id",
    Kind::Ref(Table::Company),
    "A empresa (cliente) do documento.",
    "The company (customer) of the document.",
);
const PRODUCT_CODE: Field = required(
    "product_code",
    Kind::Code,
    "Código do produto no ERP.",
    "The product's code in the ERP.",
);
const QUANTITY: Field = required("quantity", Kind::Quantity, "Quantidade.", "Quantity.");
const UNIT_PRICE: Field = required(
    "unit_price",
    Kind::NonNegativeMoney,
    "Preço unitário.",
    "Unit price.",
);
const DISCOUNT: Field = optional(
    "discount",
    Kind::Fraction,
    "Desconto, como fração do preço (0,15 = 15%).",
    "Discount, as a fraction of the price (0.15 = 15%).",
);
const ISSUED_AT: Field = required(
    "issued_at",
    Kind::Date,
    "Data de emissão.",
    "Date of issue.",
);
const EMAIL: Field = optional("email", Kind::Text, "E-mail.", "E-mail address.");
const PHONE: Field = optional("phone", Kind::Text, "Telefone.", "Phone number.");
const NAME: Field = required("name", Kind::Text, "Nome ou razão social.", "Name.");

/// Every ERP table, in the order the Histórico tab lists them ([`Table::ALL`]'s order).
pub const TABLES: &[TableDef] = {
    use Kind::*;
    &[
        table_def!(
            Table::Company,
            words("Empresa", "Company"),
            words(
                "Clientes pessoa jurídica (CNPJ).",
                "Customers that are legal persons (CNPJ).",
            ),
            0,
            &[
                required(
                    "name",
                    Text,
                    "Razão social ou nome fantasia.",
                    "Legal or trade name.",
                ),
                required("document", Cnpj, "CNPJ da empresa.", "The company's CNPJ."),
                SELLER,
                optional("city", Text, "Cidade.", "City."),
                optional("state", Text, "Estado (UF).", "State."),
                EMAIL,
                PHONE,
            ],
        ),
        table_def!(
            Table::Contact,
            words("Contato", "Contact"),
            words(
                "Clientes pessoa física; o CPF é validado quando enviado.",
                "Customers that are natural persons; the CPF is validated when present.",
            ),
            0,
            &[
                required("name", Text, "Nome da pessoa.", "The person's name."),
                optional("document", Cpf, "CPF da pessoa.", "The person's CPF."),
                optional(
                    "company_id",
                    Ref(Table::Company),
                    "Empresa à qual a pessoa está ligada.",
                    "The company the person belongs to.",
                ),
                EMAIL,
                PHONE,
            ],
        ),
        table_def!(
            Table::Quote,
            words("Cotação", "Quote"),
            words("Cotações enviadas a clientes.", "Quotes sent to customers.",),
            0,
            &[
                COMPANY,
                ISSUED_AT,
                required(
                    "total",
                    NonNegativeMoney,
                    "Valor total da cotação.",
                    "The quote's total.",
                ),
                SELLER,
            ],
        ),
        table_def!(
            Table::QuoteItem,
            words("Itens cotação", "Quote items"),
            words("Itens de uma cotação.", "Lines of a quote."),
            0,
            &[
                required(
                    "quote_id",
                    Ref(Table::Quote),
                    "A cotação do item.",
                    "The item's quote.",
                ),
                PRODUCT_CODE,
                QUANTITY,
                UNIT_PRICE,
                DISCOUNT,
            ],
        ),
        table_def!(
            Table::Order,
            words("Pedido", "Order"),
            words(
                "Pedidos de venda dos últimos 2 anos.",
                "Sales orders of the last 2 years.",
            ),
            TWO_YEARS,
            &[
                COMPANY,
                ISSUED_AT,
                required(
                    "total",
                    NonNegativeMoney,
                    "Valor total do pedido.",
                    "The order's total.",
                ),
                SELLER,
                optional(
                    "status",
                    Text,
                    "Situação do pedido no ERP.",
                    "The order's status in the ERP.",
                ),
            ],
        ),
        table_def!(
            Table::OrderItem,
            words("Itens pedido", "Order items"),
            words(
                "Itens de um pedido de venda, últimos 2 anos.",
                "Lines of a sales order, last 2 years.",
            ),
            TWO_YEARS,
            &[
                required(
                    "order_id",
                    Ref(Table::Order),
                    "O pedido do item.",
                    "The item's order.",
                ),
                PRODUCT_CODE,
                QUANTITY,
                UNIT_PRICE,
                DISCOUNT,
            ],
        ),
        // Credit notes (devoluções) carry negative totals, so the sign is free here.
        table_def!(
            Table::Invoice,
            words("Nota", "Invoice"),
            words(
                "Notas fiscais (NF-e) dos últimos 2 anos; devoluções com total negativo.",
                "Fiscal invoices (NF-e) of the last 2 years; credit notes with a negative total.",
            ),
            TWO_YEARS,
            &[
                COMPANY,
                ISSUED_AT,
                required(
                    "total",
                    Money,
                    "Valor total da nota; negativo numa devolução.",
                    "The invoice's total; negative for a credit note.",
                ),
                SELLER,
                optional("number", Text, "Número da nota.", "The invoice's number.",),
            ],
        ),
        table_def!(
            Table::InvoiceItem,
            words("Itens nota", "Invoice items"),
            words(
                "Itens de uma nota fiscal, últimos 2 anos.",
                "Lines of a fiscal invoice, last 2 years.",
            ),
            TWO_YEARS,
            &[
                required(
                    "invoice_id",
                    Ref(Table::Invoice),
                    "A nota do item.",
                    "The item's invoice.",
                ),
                PRODUCT_CODE,
                QUANTITY,
                UNIT_PRICE,
                DISCOUNT,
            ],
        ),
        table_def!(
            Table::Receivable,
            words("Fatura", "Receivable"),
            words(
                "Contas a receber em aberto (duplicatas).",
                "Open receivables (duplicatas).",
            ),
            0,
            &[
                COMPANY,
                required("due_date", Date, "Data de vencimento.", "Due date."),
                required(
                    "amount",
                    NonNegativeMoney,
                    "Valor a receber.",
                    "The amount due.",
                ),
                optional("paid_at", Date, "Data do pagamento.", "Date of payment."),
            ],
        ),
        table_def!(
            Table::Supplier,
            words("Fornecedor", "Supplier"),
            words("Fornecedores.", "Suppliers."),
            0,
            &[
                NAME,
                required(
                    "document",
                    CnpjOrCpf,
                    "CNPJ ou CPF do fornecedor.",
                    "The supplier's CNPJ or CPF.",
                ),
            ],
        ),
        table_def!(
            Table::Seller,
            words("Vendedor", "Seller"),
            words(
                "Vendedores; o vendedor de uma empresa é a sua carteira.",
                "Sales people; a company's seller is its portfolio (carteira).",
            ),
            0,
            &[
                required("name", Text, "Nome do vendedor.", "The seller's name."),
                EMAIL,
            ],
        ),
        table_def!(
            Table::CompanyBrand,
            words("Empresa marca", "Company brand"),
            words(
                "Situação comercial de uma empresa em cada marca.",
                "Commercial status of a company for each brand.",
            ),
            0,
            &[
                COMPANY,
                required("brand", Text, "A marca.", "The brand."),
                required(
                    "status",
                    Text,
                    "Situação comercial da empresa na marca.",
                    "The company's commercial status for the brand.",
                ),
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
        assert_eq!(
            find("order_item").map(|t| t.label.pt_br),
            Some("Itens pedido")
        );
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
