//! Marking delivered versions (the push stage's bookkeeping), on both backends, against
//! the real staging: only the version delivered is marked, so a record re-staged while a
//! run delivered it waits for the next run.

use chrono::Utc;
use erpsync::domain::batch::ValidRecord;
use erpsync::domain::tenant::TenantId;
use erpsync::storage::{staging, Db};
use serde_json::json;

use crate::helpers::{Backend, ScratchDb, PG_ENV};

async fn stage(db: &Db, tenant: &TenantId, ids: impl Iterator<Item = usize>, name: &str) {
    let records = ids
        .enumerate()
        .map(|(index, k)| ValidRecord {
            index: u32::try_from(index).unwrap(),
            external_id: format!("c-{k:05}"),
            fields: match json!({"name": format!("{name} {k}"), "document": "11222333000181"}) {
                serde_json::Value::Object(m) => m,
                _ => unreachable!(),
            },
            updated_at: None,
            deleted: false,
        })
        .collect();
    let txn = db.begin_write().await.unwrap();
    staging::stage(
        &txn,
        staging::StageBatch {
            tenant,
            table: "company",
            records,
            request_id: "r",
            received_at: Utc::now(),
            zone: chrono_tz::America::Sao_Paulo,
        },
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
}

async fn only_the_delivered_versions_are_marked(backend: Backend) {
    let Some((_scratch, db, tenant)) = ScratchDb::with_tenant(backend).await else {
        eprintln!("{PG_ENV} unset: PostgreSQL variant not run");
        return;
    };
    // More than one statement's worth.
    const N: usize = 4_500;
    stage(&db, &tenant, 0..N, "Empresa").await;
    let page = staging::pending_page(&db, &tenant, "company", "", N as u64)
        .await
        .unwrap();
    assert_eq!(page.len(), N);
    // Two records change while the run delivers the page it read.
    stage(&db, &tenant, [7, 4_321].into_iter(), "Renamed").await;
    let delivered: Vec<(String, i64)> = page
        .iter()
        .map(|p| (p.external_id.clone(), p.version.content_hash))
        .collect();
    staging::mark_delivered(&db, &tenant, "company", &delivered)
        .await
        .unwrap();

    let waiting = staging::pending_page(&db, &tenant, "company", "", 10)
        .await
        .unwrap();
    let ids: Vec<&str> = waiting.iter().map(|p| p.external_id.as_str()).collect();
    assert_eq!(ids, ["c-00007", "c-04321"]);
    assert!(waiting
        .iter()
        .all(|p| p.fields["name"].as_str().unwrap().starts_with("Renamed")));
    assert_eq!(
        staging::count_pending(&db, &tenant, "company", false)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn sqlite_only_the_delivered_versions_are_marked() {
    only_the_delivered_versions_are_marked(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_only_the_delivered_versions_are_marked() {
    only_the_delivered_versions_are_marked(Backend::Postgres).await;
}
