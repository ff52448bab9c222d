//! The PostgreSQL pool and the embedded migrations.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// A pooled connection idle this long is tested before it is handed out.
const IDLE_BEFORE_TEST: Duration = Duration::from_secs(1);

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database URL is not valid: {0}")]
    InvalidUrl(sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database is at migration {applied:?}, this binary needs {needed}: run `dijkwacht migrate`")]
    NotMigrated { applied: Option<i64>, needed: i64 },
}

pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    // Compiling a query plan to machine code pays off for long analytic queries; here it
    // only ever added milliseconds to queries that take less.
    let options = PgConnectOptions::from_str(url)
        .map_err(DbError::InvalidUrl)?
        .options([("jit", "off")]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // A round trip before every query cost as much as many of the queries: only a
        // connection that sat idle is tested (the database may have restarted meanwhile);
        // one in steady use that broke fails its query, which every caller retries.
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for < IDLE_BEFORE_TEST {
                    return Ok(true);
                }
                Ok(connection.ping().await.is_ok())
            })
        })
        .connect_with(options)
        .await
        .map_err(DbError::Connect)
}

pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Succeeds once every migration of this binary has been applied (by `dijkwacht migrate`,
/// in a deployment where one job migrates and the replicas wait for it).
pub async fn require_migrated(pool: &PgPool) -> Result<(), DbError> {
    let needed = MIGRATOR.iter().map(|migration| migration.version).max().unwrap_or(0);
    // No table yet reads as no migration applied.
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap_or(None);
    match applied {
        Some(applied) if applied >= needed => Ok(()),
        _ => Err(DbError::NotMigrated { applied, needed }),
    }
}
