//! The schema's versions: SQL files in `migrations/`, built into the
//! binary, applied in order at start by sqlx's migrator (under its advisory
//! lock, so daemons starting together apply each once). A database that
//! has a version this daemon does not know is newer than it: the daemon
//! refuses to start rather than run against tables it does not understand.

use std::borrow::Cow;

use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::{PgPool, SqlSafeStr};

use super::{PgError, Result};

/// Each version's number, name and SQL, oldest first. A released file is
/// never edited (the migrator checks a checksum): a change is a new file.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "cluster", include_str!("migrations/0001_cluster.sql")),
    (
        2,
        "idempotency",
        include_str!("migrations/0002_idempotency.sql"),
    ),
    (
        3,
        "dependencies",
        include_str!("migrations/0003_dependencies.sql"),
    ),
    (4, "stdin", include_str!("migrations/0004_stdin.sql")),
    (5, "output", include_str!("migrations/0005_output.sql")),
    (
        6,
        "schedules",
        include_str!("migrations/0006_schedules.sql"),
    ),
    (7, "uploads", include_str!("migrations/0007_uploads.sql")),
];

/// The newest schema version this daemon knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The table the migrator records applied versions in.
const TABLE: &str = "jobq_schema_versions";

/// Brings the schema to [`SCHEMA_VERSION`].
pub(super) async fn run(pool: &PgPool) -> Result<()> {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, name, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(name),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(TABLE);
    migrator.run(pool).await.map_err(|e| match e {
        MigrateError::VersionMissing(v) => PgError::Schema(format!(
            "the database's jobq schema is at version {v}, newer than this jobq knows \
             ({SCHEMA_VERSION}): a newer jobq uses it; upgrade this daemon"
        )),
        MigrateError::VersionMismatch(v) => PgError::Schema(format!(
            "the database's jobq schema version {v} differs from this jobq's version {v}: \
             it was changed by hand or by a build of jobq that is not a release"
        )),
        other => PgError::Schema(format!(
            "cannot bring the database's jobq schema to version {SCHEMA_VERSION}: {other}"
        )),
    })
}
