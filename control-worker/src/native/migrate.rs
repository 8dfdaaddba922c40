//! Applies `migrations/*.sql` in order, recording each in the `d1_migrations` ledger exactly as
//! `wrangler d1 migrations apply` does, so a database is migrated the same way on both sides.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::core::db::DbError;

/// Every migration, in order. A test checks this list against the `migrations/` folder.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial.sql", include_str!("../../../migrations/0001_initial.sql")),
    ("0002_deliverable.sql", include_str!("../../../migrations/0002_deliverable.sql")),
    ("0003_controllers_by_host.sql", include_str!("../../../migrations/0003_controllers_by_host.sql")),
    ("0004_task_cards.sql", include_str!("../../../migrations/0004_task_cards.sql")),
    ("0005_agent_rounds.sql", include_str!("../../../migrations/0005_agent_rounds.sql")),
    ("0006_usage_limits.sql", include_str!("../../../migrations/0006_usage_limits.sql")),
    ("0007_event_feed.sql", include_str!("../../../migrations/0007_event_feed.sql")),
    ("0008_object_storage.sql", include_str!("../../../migrations/0008_object_storage.sql")),
    ("0009_fleet_timeline.sql", include_str!("../../../migrations/0009_fleet_timeline.sql")),
];

/// wrangler's ledger table, created with wrangler's very text (the name quoted), so that the
/// schema in `sqlite_master` is identical on both sides (the `edge` test compares them).
const LEDGER_SQL: &str = "CREATE TABLE IF NOT EXISTS \"d1_migrations\"(
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		name       TEXT UNIQUE,
		applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);";

/// Applies the migrations not yet in the ledger; returns the names applied now.
pub fn apply(connection: &mut Connection) -> Result<Vec<String>, DbError> {
    let backend = |error: rusqlite::Error| DbError::Backend(error.to_string());
    connection.execute_batch(LEDGER_SQL).map_err(backend)?;
    let mut applied_now = Vec::new();
    for (name, sql) in MIGRATIONS {
        // IMMEDIATE: two processes opening one fresh file apply each migration once.
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
        let already: i64 = transaction
            .query_row("SELECT COUNT(*) FROM d1_migrations WHERE name = ?1", params![name], |row| row.get(0))
            .map_err(backend)?;
        if already == 0 {
            transaction.execute_batch(sql).map_err(|error| DbError::Backend(format!("migration {name}: {error}")))?;
            transaction.execute("INSERT INTO d1_migrations (name) VALUES (?1)", params![name]).map_err(backend)?;
            applied_now.push(name.to_string());
        }
        transaction.commit().map_err(backend)?;
    }
    Ok(applied_now)
}
