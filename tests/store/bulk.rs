//! Many ForeignSystem keys at once, with raw SQL in one transaction (the store writes one key
//! per transaction, with its event: too slow to seed tens of thousands). Rows are what the store
//! would write, minus the events. Shared by the query-plan test and `benches/foreign.rs`.
#![allow(dead_code)]

use keygate::core::foreign::value_digest;
use sqlx::Connection;
use uuid::Uuid;

/// One key to insert.
pub struct KeyRow {
    pub device_id: i32,
    pub key_name: String,
    pub value: String,
    pub table_name: String,
    pub record_id: i32,
}

/// Insert `rows` into the organization's `foreign_keys` (SQLite or PostgreSQL, by the URL), in
/// one transaction; then `ANALYZE` the table when `analyze`.
pub async fn insert_keys(url: &str, org: Uuid, rows: Vec<KeyRow>, analyze: bool) {
    let at: i64 = 1_900_000_000_000_000;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut tx = c.begin().await.unwrap();
        for r in &rows {
            sqlx::query(
                "INSERT INTO foreign_keys (uuid, org_id, device_id, key_name, value, value_digest, table_name, \
                 record_id, created_at, created_by, updated_at, updated_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'bulk', ?9, 'bulk')",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(org.to_string())
            .bind(r.device_id)
            .bind(&r.key_name)
            .bind(&r.value)
            .bind(value_digest(&r.value))
            .bind(&r.table_name)
            .bind(r.record_id)
            .bind(at)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        if analyze {
            sqlx::query("ANALYZE").execute(&mut c).await.unwrap();
        }
        c.close().await.ok();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let mut tx = c.begin().await.unwrap();
        for chunk in rows.chunks(10_000) {
            let uuids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
            let devices: Vec<i32> = chunk.iter().map(|r| r.device_id).collect();
            let names: Vec<&str> = chunk.iter().map(|r| r.key_name.as_str()).collect();
            let values: Vec<&str> = chunk.iter().map(|r| r.value.as_str()).collect();
            let digests: Vec<Vec<u8>> = chunk.iter().map(|r| value_digest(&r.value)).collect();
            let tables: Vec<&str> = chunk.iter().map(|r| r.table_name.as_str()).collect();
            let records: Vec<i32> = chunk.iter().map(|r| r.record_id).collect();
            sqlx::query(
                "INSERT INTO foreign_keys (uuid, org_id, device_id, key_name, value, value_digest, table_name, \
                 record_id, created_at, created_by, updated_at, updated_by) \
                 SELECT u, $1, d, n, v, g, t, r, $2, 'bulk', $2, 'bulk' \
                 FROM UNNEST($3::uuid[], $4::int4[], $5::text[], $6::text[], $7::bytea[], $8::text[], $9::int4[]) \
                 AS x(u, d, n, v, g, t, r)",
            )
            .bind(org)
            .bind(at)
            .bind(&uuids)
            .bind(&devices)
            .bind(&names)
            .bind(&values)
            .bind(&digests)
            .bind(&tables)
            .bind(&records)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        if analyze {
            sqlx::query("ANALYZE").execute(&mut c).await.unwrap();
        }
        c.close().await.ok();
    }
}
