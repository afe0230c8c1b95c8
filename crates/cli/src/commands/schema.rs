//! `daikai migrate` and `daikai check-schema` (docs/operations.md §1).

use std::io::Write;

use sqlx::PgPool;

/// Applies the migrations the database lacks.
pub async fn migrate(pool: &PgPool, out: &mut dyn Write) -> anyhow::Result<()> {
    let report = store::migrate(pool).await?;
    if report.applied.is_empty() {
        writeln!(
            out,
            "schema already at version {}: nothing to apply",
            report.latest
        )?;
    } else {
        let applied: Vec<String> = report.applied.iter().map(i64::to_string).collect();
        writeln!(
            out,
            "applied migration(s) {}; schema now at version {}",
            applied.join(", "),
            report.latest
        )?;
    }
    Ok(())
}

/// Fails unless the schema fits this binary.
pub async fn check(pool: &PgPool, out: &mut dyn Write) -> anyhow::Result<()> {
    store::check_schema(pool).await?;
    writeln!(
        out,
        "schema is current (version {})",
        store::latest_version()
    )?;
    Ok(())
}
