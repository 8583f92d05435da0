//! The host guide's error catalogue (`docs/host-guide.md`) kept honest against the
//! contract: every RPC of IntegrationHistory and ErpIngest has its section and no section
//! names an RPC that does not exist (Admin's sections name Admin RPCs); the HTTP route's section lists exactly the statuses
//! the OpenAPI document declares; and neither document links outside the repository.

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// `Service.Rpc` for every `rpc` line of `service`'s block in the proto `path`.
fn rpcs(path: &str, service: &str) -> BTreeSet<String> {
    let proto = read(path);
    let mut inside = false;
    let mut out = BTreeSet::new();
    for line in proto.lines().map(str::trim) {
        if line.starts_with(&format!("service {service} ")) {
            inside = true;
        } else if inside && line.starts_with('}') {
            break;
        } else if let Some(rest) = line.strip_prefix("rpc ").filter(|_| inside) {
            let name = rest.split('(').next().unwrap().trim();
            out.insert(format!("{service}.{name}"));
        }
    }
    assert!(!out.is_empty(), "no rpc found for {service} in {path}");
    out
}

/// The lines of the guide's section under heading `heading`, up to the next heading.
fn section<'a>(guide: &'a str, heading: &str) -> Vec<&'a str> {
    guide
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .collect()
}

#[test]
fn the_error_catalogue_has_a_section_for_every_rpc_and_only_those() {
    let guide = read("docs/host-guide.md");
    let mut expected = rpcs(
        "proto/erpsync/v1/integration_history.proto",
        "IntegrationHistory",
    );
    expected.extend(rpcs("proto/erpsync/v1/erp_ingest.proto", "ErpIngest"));
    let catalogue = guide
        .split_once("## Error catalogue")
        .expect("the guide has an error catalogue")
        .1;
    let headed: BTreeSet<String> = catalogue
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .filter(|h| h.starts_with("IntegrationHistory.") || h.starts_with("ErpIngest."))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        headed, expected,
        "catalogue headings vs the protos' rpc lines"
    );
    for rpc in &expected {
        let rows = section(&guide, &format!("### {rpc}"));
        assert!(
            rows.iter().any(|r| r.starts_with("| `")),
            "{rpc} has no row of codes"
        );
    }
}

/// Admin's sections: each names an RPC of the service and has its row of codes, and the
/// provisioning calls have theirs (the other calls' sections land with their code).
#[test]
fn the_admin_sections_name_admin_rpcs() {
    let guide = read("docs/host-guide.md");
    let admin = rpcs("proto/erpsync/v1/admin.proto", "Admin");
    let catalogue = guide.split_once("## Error catalogue").unwrap().1;
    let headed: BTreeSet<String> = catalogue
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .filter(|h| h.starts_with("Admin."))
        .map(str::to_owned)
        .collect();
    assert!(
        headed.is_subset(&admin),
        "sections of no Admin rpc: {:?}",
        headed.difference(&admin).collect::<Vec<_>>()
    );
    for rpc in [
        "CreateTenant",
        "UpdateTenant",
        "GetTenant",
        "ListTenants",
        "IssueToken",
        "ListTokens",
        "RevokeToken",
    ] {
        let rpc = format!("Admin.{rpc}");
        assert!(headed.contains(&rpc), "no section for {rpc}");
        let rows = section(&guide, &format!("### {rpc}"));
        assert!(
            rows.iter().any(|r| r.starts_with("| `")),
            "{rpc} has no row of codes"
        );
    }
}

#[test]
fn the_http_catalogue_lists_exactly_the_statuses_of_the_openapi_document() {
    let guide = read("docs/host-guide.md");
    let doc: serde_json::Value = serde_json::from_str(&read("docs/openapi.json")).unwrap();
    let declared: BTreeSet<String> = doc["paths"]["/erp/v1/{table}"]["post"]["responses"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let listed: BTreeSet<String> = section(&guide, "### POST /erp/v1/{table}")
        .iter()
        .filter_map(|row| row.strip_prefix("| "))
        .filter_map(|row| row.split(' ').next())
        .filter(|status| status.len() == 3 && status.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed, declared,
        "the guide's HTTP statuses vs the OpenAPI document's"
    );
}

#[test]
fn the_host_documents_link_only_inside_the_repository() {
    for path in ["docs/host-guide.md", "docs/openapi.json"] {
        let text = read(path);
        for scheme in ["http://", "https://", "ftp://", "mailto:"] {
            // Example URLs of the server itself are fine; links to elsewhere are not.
            let outside: Vec<&str> = text
                .match_indices(scheme)
                .map(|(i, _)| &text[i..text.len().min(i + 40)])
                .filter(|u| !u.starts_with(&format!("{scheme}127.0.0.1")))
                .collect();
            assert!(outside.is_empty(), "{path} links outside: {outside:?}");
        }
        let guide_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        for target in text.split("](").skip(1).filter_map(|t| t.split(')').next()) {
            let file = target.split('#').next().unwrap();
            if !file.is_empty() {
                assert!(
                    guide_dir.join(file).exists(),
                    "{path}: broken link {target}"
                );
            }
        }
    }
}
