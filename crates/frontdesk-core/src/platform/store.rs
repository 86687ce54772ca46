//! Writing a checked set of columns (a domain input's `Columns::columns()`) into a tenant
//! table, so each resource states its rules once and none repeats the INSERT/UPDATE SQL.
//! Column names come from the resource's own code, never from a client.
//!
//! A resource whose rows are written only this way implements [`Record`] (its table and
//! how to read one row) and gets create, update and delete from it.

use serde_json::{Map, Value};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{CoreError, Tx};

/// A resource stored as one row of a tenant table, written with checked columns.
pub trait Record: Sized + Send {
    /// Its table in schema `app`.
    const TABLE: &'static str;

    /// The statement reading one row as the caller may see it: `$1` the tenant, `$2` the id.
    fn select_one() -> String;

    /// A row as `select_one` reads it.
    fn from_row(row: &Row) -> Result<Self, CoreError>;

    /// The row `id` as the caller may see it (NotFound otherwise). The transaction's last
    /// statement when it is the work's last.
    fn get(
        tx: &mut Tx,
        tenant: Uuid,
        id: Uuid,
    ) -> impl Future<Output = Result<Self, CoreError>> + Send {
        async move {
            let row = tx
                .last()
                .query_opt(&Self::select_one(), &[&tenant, &id])
                .await?
                .ok_or(CoreError::NotFound)?;
            Self::from_row(&row)
        }
    }

    /// Insert a row of checked `fields` with a fresh id, and read it back.
    fn create(
        tx: &mut Tx,
        tenant: Uuid,
        fields: Map<String, Value>,
    ) -> impl Future<Output = Result<Self, CoreError>> + Send {
        async move {
            let id = create(tx, Self::TABLE, tenant, fields).await?;
            Self::get(tx, tenant, id).await
        }
    }

    /// Change the checked `fields` of row `id`, and read it back.
    fn update(
        tx: &mut Tx,
        tenant: Uuid,
        id: Uuid,
        fields: Map<String, Value>,
    ) -> impl Future<Output = Result<Self, CoreError>> + Send {
        async move {
            update(tx, Self::TABLE, tenant, id, fields).await?;
            Self::get(tx, tenant, id).await
        }
    }

    /// Delete row `id` (409 while other rows refer to it).
    fn delete(
        tx: &mut Tx,
        tenant: Uuid,
        id: Uuid,
    ) -> impl Future<Output = Result<(), CoreError>> + Send {
        delete(tx, Self::TABLE, tenant, id)
    }
}

fn columns(fields: &Map<String, Value>) -> String {
    debug_assert!(
        fields
            .keys()
            .all(|k| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
    fields.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Insert one row; columns absent from `fields` take their defaults.
///
/// A plain `INSERT … VALUES` (each value a field of the record read from `$1`), not
/// `INSERT … SELECT`: Citus routes the former to the tenant's shard, but runs the latter
/// through the coordinator and sends its rows with COPY, which row-level security refuses.
async fn insert(tx: &mut Tx, table: &str, fields: Map<String, Value>) -> Result<(), CoreError> {
    let cols = columns(&fields);
    let values = fields
        .keys()
        .map(|c| format!("(jsonb_populate_record(null::app.{table}, $1)).{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    tx.execute(
        &format!("insert into app.{table} ({cols}) values ({values})"),
        &[&Value::Object(fields)],
    )
    .await?;
    Ok(())
}

/// Insert a new row of `tenant` with a fresh UUIDv7 id; returns the id.
pub async fn create(
    tx: &mut Tx,
    table: &str,
    tenant: Uuid,
    mut fields: Map<String, Value>,
) -> Result<Uuid, CoreError> {
    let id = Uuid::now_v7();
    fields.insert("tenant_id".into(), Value::String(tenant.to_string()));
    fields.insert("id".into(), Value::String(id.to_string()));
    insert(tx, table, fields).await?;
    Ok(id)
}

/// Update the columns in `fields` of row `id`; NotFound when the caller cannot see it.
pub async fn update(
    tx: &mut Tx,
    table: &str,
    tenant: Uuid,
    id: Uuid,
    fields: Map<String, Value>,
) -> Result<(), CoreError> {
    let n = if fields.is_empty() {
        tx.execute(
            &format!("select 1 from app.{table} where tenant_id = $1 and id = $2"),
            &[&tenant, &id],
        )
        .await?
    } else {
        let cols = columns(&fields);
        // (null::table, not the row itself: reading the whole row would need SELECT on
        // every column, and some tables keep columns from the request roles, e.g. secrets)
        let set = if fields.len() == 1 {
            format!("{cols} = (select {cols} from jsonb_populate_record(null::app.{table}, $3))")
        } else {
            format!("({cols}) = (select {cols} from jsonb_populate_record(null::app.{table}, $3))")
        };
        tx.execute(
            &format!("update app.{table} t set {set} where t.tenant_id = $1 and t.id = $2"),
            &[&tenant, &id, &Value::Object(fields)],
        )
        .await?
    };
    if n == 0 {
        Err(CoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Delete row `id`; 409 while other rows still reference it.
pub async fn delete(tx: &mut Tx, table: &str, tenant: Uuid, id: Uuid) -> Result<(), CoreError> {
    match tx
        .execute(
            &format!("delete from app.{table} where tenant_id = $1 and id = $2"),
            &[&tenant, &id],
        )
        .await
    {
        Ok(0) => Err(CoreError::NotFound),
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("23503") => Err(CoreError::Conflict {
            field: None,
            message: format!(
                "other records still refer to this {}",
                table.trim_end_matches('s')
            ),
        }),
        Err(e) => Err(e.into()),
    }
}
