//! The database roles Frontdesk needs, created before migrations run.
//!
//! Roles are cluster-wide and outlive databases, so they are not part of migrations.
//! On a server where the connecting role may create roles (the embedded cluster, a
//! self-hosted PostgreSQL, Supabase's `postgres` role) `ensure` creates them; otherwise it
//! returns the SQL an administrator must run once.

use tokio_postgres::Client;

/// The owner of every object; migrations run as it.
pub const OWNER: &str = "frontdesk_owner";
/// The server's login role: NOINHERIT, owns nothing, may SET ROLE to the request roles.
pub const AUTHENTICATOR: &str = "frontdesk_authenticator";
/// Requests made by people (JWT).
pub const USER: &str = "frontdesk_user";
/// Requests made with an API key.
pub const SERVICE: &str = "frontdesk_service";
/// Operator endpoints and cross-tenant workers; bypasses RLS.
pub const OPERATOR: &str = "frontdesk_operator";
/// Signed callbacks from providers (no bearer token; a verified signature): may only
/// record the callback for its tenant and provider.
pub const CALLBACK: &str = "frontdesk_callback";

/// The statements that create the roles and give them what they need on `database`;
/// safe to run again. `authenticator_password` sets the login password when given.
pub fn setup_sql(database: &str, authenticator_password: Option<&str>) -> String {
    roles_sql(authenticator_password) + &database_grants_sql(database)
}

/// The cluster-wide part: the roles and their memberships.
pub fn roles_sql(authenticator_password: Option<&str>) -> String {
    let quote = |s: &str| s.replace('\'', "''");
    let password = authenticator_password
        .map(|p| format!(" password '{}'", quote(p)))
        .unwrap_or_default();
    format!(
        r#"do $$
begin
    if not exists (select from pg_roles where rolname = '{OWNER}') then
        create role {OWNER} nologin;
    end if;
    if not exists (select from pg_roles where rolname = '{USER}') then
        create role {USER} nologin;
    end if;
    if not exists (select from pg_roles where rolname = '{SERVICE}') then
        create role {SERVICE} nologin;
    end if;
    if not exists (select from pg_roles where rolname = '{OPERATOR}') then
        create role {OPERATOR} nologin bypassrls;
    end if;
    if not exists (select from pg_roles where rolname = '{CALLBACK}') then
        create role {CALLBACK} nologin;
    end if;
    if not exists (select from pg_roles where rolname = '{AUTHENTICATOR}') then
        create role {AUTHENTICATOR} login noinherit;
    end if;
end
$$;
alter role {AUTHENTICATOR} login noinherit{password};
grant {USER}, {SERVICE}, {OPERATOR}, {CALLBACK} to {AUTHENTICATOR};
"#
    )
}

/// What the roles need on the database itself.
pub fn database_grants_sql(database: &str) -> String {
    let database = database.replace('"', "\"\"");
    format!(
        "grant connect, create, temporary on database \"{database}\" to {OWNER};\n\
         grant connect on database \"{database}\" to {AUTHENTICATOR};\n"
    )
}

/// The connecting role must be able to `SET ROLE frontdesk_owner` to migrate.
fn owner_membership_sql(login: &str) -> String {
    format!("grant {OWNER} to \"{}\"", login.replace('"', "\"\""))
}

/// Create the roles if they are missing. On a permission error, the returned error says
/// what to run as an administrator.
pub async fn ensure(
    client: &Client,
    database: &str,
    authenticator_password: Option<&str>,
) -> anyhow::Result<()> {
    let present: i64 = client
        .query_one(
            "select count(*) from pg_roles where rolname = any($1)",
            &[&vec![
                OWNER,
                AUTHENTICATOR,
                USER,
                SERVICE,
                OPERATOR,
                CALLBACK,
            ]],
        )
        .await?
        .get(0);
    let can_set_owner: bool = client
        .query_one(
            "select exists (select from pg_roles where rolname = $1) \
             and pg_has_role(current_user, $1, 'member')",
            &[&OWNER],
        )
        .await?
        .get(0);
    if present == 6 && can_set_owner && authenticator_password.is_none() {
        return Ok(());
    }
    let login: String = client
        .query_one("select session_user::text", &[])
        .await?
        .get(0);
    let sql = setup_sql(database, authenticator_password);
    let membership = owner_membership_sql(&login);
    let result = async {
        client.batch_execute(&sql).await?;
        if !can_set_owner {
            client.batch_execute(&membership).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    }
    .await;
    if let Err(error) = result {
        anyhow::bail!(
            "could not create Frontdesk's database roles ({}).\n\
             Ask an administrator (a superuser, or a role with CREATEROLE that may grant BYPASSRLS) \
             to run this once on database {database:?}, then start frontdesk again:\n\n{sql}{membership};\n",
            error
                .as_db_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_else(|| error.to_string())
        );
    }
    Ok(())
}
