//! The field catalogue as ListTables answers it: each table with every field, its type,
//! whether it is required and what it holds, in the language asked for.

use super::super::pb;
use crate::domain::language::Language;
use crate::domain::tables::{Field, Kind, TableDef};

/// One catalog entry in `language`.
pub fn table_info(t: &TableDef, language: Language) -> pb::TableInfo {
    pb::TableInfo {
        id: t.id.to_owned(),
        label: t.label.get(language).to_owned(),
        description: t.description.get(language).to_owned(),
        required_fields: t.required_fields.iter().map(|f| (*f).to_owned()).collect(),
        window_days: t.window_days,
        fields: t.fields.iter().map(|f| field_info(f, language)).collect(),
        language: language.tag().to_owned(),
    }
}

fn field_info(f: &Field, language: Language) -> pb::FieldInfo {
    pb::FieldInfo {
        name: f.name.to_owned(),
        r#type: field_type(f.kind) as i32,
        required: f.required,
        description: f.description.get(language).to_owned(),
        references: f
            .kind
            .references()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        format: f.kind.format().get(language).to_owned(),
        type_name: f.kind.type_name().to_owned(),
    }
}

/// The proto's name of a kind.
pub fn field_type(kind: Kind) -> pb::FieldType {
    match kind {
        Kind::Text => pb::FieldType::Text,
        Kind::Code => pb::FieldType::Code,
        Kind::Ref(_) => pb::FieldType::Reference,
        Kind::Date => pb::FieldType::Date,
        Kind::Money => pb::FieldType::Money,
        Kind::NonNegativeMoney => pb::FieldType::NonNegativeMoney,
        Kind::Quantity => pb::FieldType::Quantity,
        Kind::Fraction => pb::FieldType::Fraction,
        Kind::Cnpj => pb::FieldType::Cnpj,
        Kind::Cpf => pb::FieldType::Cpf,
        Kind::CnpjOrCpf => pb::FieldType::CnpjOrCpf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tables::TABLES;

    #[test]
    fn every_field_is_listed_with_its_type_and_reference() {
        for t in TABLES {
            let info = table_info(t, Language::En);
            let names: Vec<&str> = info.fields.iter().map(|f| f.name.as_str()).collect();
            let want: Vec<&str> = t.fields.iter().map(|f| f.name).collect();
            assert_eq!(names, want, "{}", t.id);
            for f in &info.fields {
                assert_ne!(
                    f.r#type,
                    pb::FieldType::Unspecified as i32,
                    "{}.{}",
                    t.id,
                    f.name
                );
                assert_eq!(
                    f.r#type == pb::FieldType::Reference as i32,
                    !f.references.is_empty(),
                    "{}.{}",
                    t.id,
                    f.name
                );
                assert!(!f.description.is_empty() && !f.format.is_empty());
            }
        }
        let company = table_info(TABLES[0].table.def(), Language::PtBr);
        assert_eq!(company.label, "Empresa");
        assert_eq!(company.language, "pt-BR");
        let seller = company
            .fields
            .iter()
            .find(|f| f.name == "seller_id")
            .unwrap();
        assert_eq!(seller.references, "seller");
        assert!(!seller.required);
    }
}
