//! Fields a table does not know: the message that names them (with the table's accepted
//! fields) and the near-miss suggestion — a known alias (`cnpj` → `document`, `nome` →
//! `name`, `razao_social` → `name`), else the table's field within a small edit distance.

use super::tables::TableDef;

/// Names ERPs give the catalog's fields (pt-BR column names, mostly), folded as
/// [`fold`] folds them: alias → field. An alias only suggests a field its table has.
const ALIASES: &[(&str, &str)] = &[
    ("cnpj", "document"),
    ("cpf", "document"),
    ("cnpj_cpf", "document"),
    ("cpf_cnpj", "document"),
    ("documento", "document"),
    ("doc", "document"),
    ("nome", "name"),
    ("razao_social", "name"),
    ("razao", "name"),
    ("nome_fantasia", "name"),
    ("cidade", "city"),
    ("municipio", "city"),
    ("uf", "state"),
    ("estado", "state"),
    ("telefone", "phone"),
    ("fone", "phone"),
    ("celular", "phone"),
    ("e_mail", "email"),
    ("vendedor", "seller_id"),
    ("vendedor_id", "seller_id"),
    ("id_vendedor", "seller_id"),
    ("cliente", "company_id"),
    ("cliente_id", "company_id"),
    ("id_cliente", "company_id"),
    ("empresa", "company_id"),
    ("empresa_id", "company_id"),
    ("emissao", "issued_at"),
    ("data_emissao", "issued_at"),
    ("dt_emissao", "issued_at"),
    ("valor_total", "total"),
    ("valor", "total"),
    ("valor", "amount"),
    ("quantidade", "quantity"),
    ("qtd", "quantity"),
    ("qtde", "quantity"),
    ("preco", "unit_price"),
    ("preco_unitario", "unit_price"),
    ("valor_unitario", "unit_price"),
    ("desconto", "discount"),
    ("produto", "product_code"),
    ("codigo_produto", "product_code"),
    ("cod_produto", "product_code"),
    ("vencimento", "due_date"),
    ("data_vencimento", "due_date"),
    ("pagamento", "paid_at"),
    ("data_pagamento", "paid_at"),
    ("numero", "number"),
    ("numero_nota", "number"),
    ("marca", "brand"),
    ("situacao", "status"),
    ("pedido", "order_id"),
    ("pedido_id", "order_id"),
    ("nota", "invoice_id"),
    ("nota_id", "invoice_id"),
    ("cotacao", "quote_id"),
    ("cotacao_id", "quote_id"),
];

/// Farthest edit distance at which a name is taken for a misspelt field.
const MAX_DISTANCE: usize = 2;

/// The message of an unknown field of `table`: "unknown field; did you mean "document"?
/// this table accepts: name, document, …" (the question only with a suggestion).
pub fn unknown_field_message(table: &TableDef, suggestion: Option<&str>) -> String {
    match suggestion {
        Some(s) => format!(
            "unknown field; did you mean \"{s}\"? this table accepts: {}",
            table.accepted_fields()
        ),
        None => format!(
            "unknown field; this table accepts: {}",
            table.accepted_fields()
        ),
    }
}

/// The field of `table` that `name` most likely meant, if any: a known alias, else the
/// nearest field within [`MAX_DISTANCE`] edits (after folding case, accents and
/// separators), the first in the table's order on a tie.
pub fn suggest(table: &TableDef, name: &str) -> Option<&'static str> {
    let folded = fold(name);
    if folded.is_empty() {
        return None;
    }
    let has = |field: &str| table.field(field).map(|f| f.name);
    if let Some(field) = ALIASES
        .iter()
        .filter(|(alias, _)| *alias == folded)
        .find_map(|(_, field)| has(field))
    {
        return Some(field);
    }
    table
        .fields
        .iter()
        .map(|f| (distance(&folded, f.name), f.name))
        .filter(|(d, field)| *d <= MAX_DISTANCE && *d < field.len().max(2) / 2 + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, field)| field)
}

/// A field name as compared: lower case, accents dropped, spaces, dots and hyphens as
/// `_`, surrounding separators trimmed ("Razão Social" → "razao_social").
fn fold(name: &str) -> String {
    let mapped: String = name
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            ' ' | '-' | '.' => '_',
            c => c,
        })
        .collect();
    mapped.trim_matches('_').to_owned()
}

/// Levenshtein distance, in characters; names longer than 64 characters are no near
/// miss of any field (and are not compared at all, which keeps this cheap).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tables::Table;

    #[test]
    fn aliases_suggest_the_field_their_table_has() {
        let company = Table::Company.def();
        assert_eq!(suggest(company, "cnpj"), Some("document"));
        assert_eq!(suggest(company, "CNPJ"), Some("document"));
        assert_eq!(suggest(company, "nome"), Some("name"));
        assert_eq!(suggest(company, "Razão Social"), Some("name"));
        assert_eq!(suggest(company, "razao_social"), Some("name"));
        assert_eq!(suggest(Table::Contact.def(), "cpf"), Some("document"));
        assert_eq!(suggest(Table::Invoice.def(), "valor"), Some("total"));
        assert_eq!(suggest(Table::Receivable.def(), "valor"), Some("amount"));
        // The seller table has no document: no suggestion from the alias.
        assert_eq!(suggest(Table::Seller.def(), "cnpj"), None);
    }

    #[test]
    fn a_misspelling_suggests_the_nearest_field() {
        let company = Table::Company.def();
        assert_eq!(suggest(company, "documnet"), Some("document"));
        assert_eq!(suggest(company, "emial"), Some("email"));
        assert_eq!(suggest(company, "seller-id"), Some("seller_id"));
        assert_eq!(suggest(company, "sellerid"), Some("seller_id"));
        assert_eq!(suggest(company, "erp_flag"), None);
        assert_eq!(suggest(company, "x"), None);
        assert_eq!(suggest(company, ""), None);
        assert_eq!(suggest(company, &"a".repeat(10_000)), None);
    }

    #[test]
    fn the_message_lists_the_accepted_fields() {
        let company = Table::Company.def();
        assert_eq!(
            unknown_field_message(company, Some("document")),
            "unknown field; did you mean \"document\"? this table accepts: \
             name, document, seller_id, city, state, email, phone"
        );
        assert_eq!(
            unknown_field_message(Table::Seller.def(), None),
            "unknown field; this table accepts: name, email"
        );
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }
}
