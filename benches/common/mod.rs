//! What the benchmarks share: a throw-away PostgreSQL database.

use std::str::FromStr;

use sqlx::{ConnectOptions, Connection};

/// Creates database `name` on the server of `admin` (dropping a leftover) and returns
/// its URL.
pub async fn create_pg(admin: &str, name: &str) -> String {
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(admin)
        .unwrap()
        .connect()
        .await
        .expect("PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.split('?').next().unwrap();
    let slash = base.find("://").map_or(0, |i| i + 3);
    let server = match base[slash..].find('/') {
        Some(i) => &base[..slash + i],
        None => base,
    };
    format!("{server}/{name}")
}

/// Drops database `name`.
pub async fn drop_pg(admin: &str, name: &str) {
    if let Ok(mut conn) = sqlx::postgres::PgConnectOptions::from_str(admin)
        .unwrap()
        .connect()
        .await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}
