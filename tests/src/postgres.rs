//! A fresh database per test, so tests never see each other's rows.

use rand::Rng;
use sqlx::Connection;

pub const URL_VAR: &str = "SETTINGS_SYNC_TEST_DATABASE_URL";

/// The admin URL of the test cluster. Panics with the fix when it is unset:
/// a PostgreSQL test that silently skipped would hide a broken store.
pub fn admin_url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!("{URL_VAR} is not set: run the suite with scripts/test.sh, which starts PostgreSQL")
    })
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!("test_{:016x}", rand::rng().random::<u64>());
    let mut connection = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connecting to the test cluster");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("creating a test database");
    let (base, _) = admin
        .rsplit_once('/')
        .expect("the admin URL names a database");
    format!("{base}/{name}")
}
