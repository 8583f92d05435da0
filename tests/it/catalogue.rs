//! The host guide's error catalogue (`docs/host-guide.md`) kept honest against the
//! contract: every RPC of every service erpsync serves (IntegrationHistory, ErpIngest,
//! Admin) has its section and no section names an RPC that does not exist; the HTTP
//! route's section lists exactly the statuses the OpenAPI document declares; and neither
//! document links outside the repository.

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

/// Every service of the protos that erpsync serves (src/grpc/mod.rs builds its server;
/// CrmSink, which erpsync calls, is not one), with the proto that declares it.
fn served_services() -> Vec<(String, String)> {
    let serving = read("src/grpc/mod.rs");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/erpsync/v1");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let path = format!("proto/erpsync/v1/{name}");
        for line in read(&path).lines() {
            let Some(service) = line.strip_prefix("service ") else {
                continue;
            };
            let service = service.split_whitespace().next().unwrap().to_owned();
            if serving.contains(&format!("{service}Server::new(")) {
                out.push((path.clone(), service));
            }
        }
    }
    out.sort();
    out
}

/// The catalogue has one section for every RPC of every served service (Admin,
/// ErpIngest, IntegrationHistory), each with its row of codes, and no section of an RPC
/// that does not exist or is not served. A heading whose first word holds a '.' is an
/// RPC's section and names it alone; the others ("Every call", the HTTP route) are not.
#[test]
fn the_error_catalogue_has_a_section_for_every_rpc_and_only_those() {
    let guide = read("docs/host-guide.md");
    let services = served_services();
    let names: Vec<&str> = services.iter().map(|(_, s)| s.as_str()).collect();
    for service in ["Admin", "ErpIngest", "IntegrationHistory"] {
        assert!(
            names.contains(&service),
            "{service} not found served: {names:?}"
        );
    }
    let mut expected = BTreeSet::new();
    for (path, service) in &services {
        expected.extend(rpcs(path, service));
    }
    let catalogue = guide
        .split_once("## Error catalogue")
        .expect("the guide has an error catalogue")
        .1;
    let headings: Vec<&str> = catalogue
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .filter(|h| h.split(' ').next().is_some_and(|w| w.contains('.')))
        .collect();
    let headed: BTreeSet<String> = headings.iter().map(|h| (*h).to_owned()).collect();
    assert_eq!(
        headings.len(),
        headed.len(),
        "an RPC has two sections: {headings:?}"
    );
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
