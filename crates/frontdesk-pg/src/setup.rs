//! Getting a database ready for Frontdesk: roles, the database, migrations.

use anyhow::Context;

use crate::{embedded::Cluster, migrate::Migrator, pool, roles};

/// On the embedded cluster: create the roles and the database `database` (owned by
/// `frontdesk_owner`) when missing, and set the login roles' `passwords`.
pub async fn prepare_embedded(
    cluster: &Cluster,
    database: &str,
    passwords: &roles::Passwords,
) -> anyhow::Result<()> {
    let client = pool::connect(&cluster.config(crate::embedded::SUPERUSER, "postgres"))
        .await
        .context("connecting to the embedded cluster")?;
    let exists: bool = client
        .query_one(
            "select exists (select from pg_database where datname = $1)",
            &[&database],
        )
        .await?
        .get(0);
    if !exists {
        client.batch_execute(&roles::roles_sql(passwords)).await?;
        client
            .batch_execute(&format!(
                "create database \"{}\" owner {} encoding 'UTF8' template template0",
                database.replace('"', "\"\""),
                roles::OWNER
            ))
            .await
            .context("creating the database")?;
    }
    roles::ensure(&client, database, passwords).await
}

/// Apply pending migrations with an administrative connection.
pub async fn migrate(admin: &tokio_postgres::Config) -> anyhow::Result<Vec<u32>> {
    let client = pool::connect(admin)
        .await
        .context("connecting to migrate")?;
    Migrator::new(&client).up().await
}
