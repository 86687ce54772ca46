//! The database roles Frontdesk needs, created before migrations run.
//!
//! Roles are cluster-wide and outlive databases, so they are not part of migrations.
//! All three working roles can log in — Citus connects to its workers as the current role,
//! so a role that cannot log in cannot run a distributed query — and no request ever
//! switches role (`SET ROLE`): who the caller is travels in transaction-local settings.
//!
//! On a server where the connecting role may create roles (the embedded cluster, a
//! self-hosted PostgreSQL, Supabase's `postgres` role) `ensure` creates them; otherwise it
//! returns the SQL an administrator must run once (also printed by `frontdesk db roles`).

use tokio_postgres::Client;

/// The owner of every object and of the SECURITY DEFINER functions; migrations run as it.
pub const OWNER: &str = "frontdesk_owner";
/// Every tenant request (people, API keys, providers' callbacks) and the authentication
/// lookups: bound by row-level security.
pub const APP: &str = "frontdesk_app";
/// Operator endpoints and the background workers that cross tenants; bypasses RLS.
pub const OPERATOR: &str = "frontdesk_operator";

/// The request roles of the first design, which migrations 0001–0007 grant to; after 0008
/// they hold nothing. They exist (NOLOGIN) so that those migrations apply.
pub const LEGACY: [&str; 4] = [
    "frontdesk_user",
    "frontdesk_service",
    "frontdesk_callback",
    "frontdesk_authenticator",
];

/// Passwords to set on the login roles (none: leave them as they are).
#[derive(Default, Clone)]
pub struct Passwords {
    pub owner: Option<String>,
    pub app: Option<String>,
    pub operator: Option<String>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |p: &Option<String>| if p.is_some() { "***" } else { "none" };
        write!(
            f,
            "Passwords {{ owner: {}, app: {}, operator: {} }}",
            set(&self.owner),
            set(&self.app),
            set(&self.operator)
        )
    }
}

impl Passwords {
    fn any(&self) -> bool {
        self.owner.is_some() || self.app.is_some() || self.operator.is_some()
    }
}

/// The statements that create the roles and give them what they need on `database`;
/// safe to run again.
pub fn setup_sql(database: &str, passwords: &Passwords) -> String {
    roles_sql(passwords) + &database_grants_sql(database)
}

/// The cluster-wide part: the roles, their attributes and passwords.
pub fn roles_sql(passwords: &Passwords) -> String {
    let quote = |s: &str| s.replace('\'', "''");
    let password = |p: &Option<String>| {
        p.as_deref()
            .map(|p| format!(" password '{}'", quote(p)))
            .unwrap_or_default()
    };
    let mut sql = String::from("do $$\nbegin\n");
    for (role, attributes) in [
        (OWNER, "login"),
        (APP, "login"),
        (OPERATOR, "login bypassrls"),
    ]
    .into_iter()
    .chain(LEGACY.map(|r| (r, "nologin")))
    {
        sql.push_str(&format!(
            "    if not exists (select from pg_roles where rolname = '{role}') then\n        \
             create role {role} {attributes};\n    end if;\n"
        ));
    }
    sql.push_str("end\n$$;\n");
    sql.push_str(&format!(
        "alter role {OWNER} login{};\nalter role {APP} login nobypassrls{};\n\
         alter role {OPERATOR} login bypassrls{};\nalter role frontdesk_authenticator nologin;\n",
        password(&passwords.owner),
        password(&passwords.app),
        password(&passwords.operator),
    ));
    sql
}

/// What the roles need on the database itself.
pub fn database_grants_sql(database: &str) -> String {
    let database = database.replace('"', "\"\"");
    format!(
        "grant connect, create, temporary on database \"{database}\" to {OWNER};\n\
         grant connect on database \"{database}\" to {APP}, {OPERATOR};\n"
    )
}

/// The connecting role must be able to `SET ROLE frontdesk_owner` to migrate.
fn owner_membership_sql(login: &str) -> String {
    format!("grant {OWNER} to \"{}\"", login.replace('"', "\"\""))
}

/// Create the roles if they are missing (and set `passwords` when given). On a permission
/// error, the returned error says what to run as an administrator.
pub async fn ensure(client: &Client, database: &str, passwords: &Passwords) -> anyhow::Result<()> {
    let ready: bool = client
        .query_one(
            "select count(*) filter (where rolname = any($1) and rolcanlogin) = 3
                    and count(*) filter (where rolname = any($2)) = 4
                    and bool_and(rolbypassrls) filter (where rolname = $3)
                    and pg_has_role(current_user, $4, 'member')
             from pg_roles where rolname = any($1) or rolname = any($2)",
            &[
                &vec![OWNER, APP, OPERATOR],
                &LEGACY.to_vec(),
                &OPERATOR,
                &OWNER,
            ],
        )
        .await
        .map(|row| row.get::<_, Option<bool>>(0).unwrap_or(false))
        .unwrap_or(false);
    if ready && !passwords.any() {
        return Ok(());
    }
    let login: String = client
        .query_one("select session_user::text", &[])
        .await?
        .get(0);
    let sql = setup_sql(database, passwords);
    let membership = owner_membership_sql(&login);
    let result = async {
        client.batch_execute(&sql).await?;
        let member: bool = client
            .query_one("select pg_has_role(current_user, $1, 'member')", &[&OWNER])
            .await?
            .get(0);
        if !member {
            client.batch_execute(&membership).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    }
    .await;
    if let Err(error) = result {
        anyhow::bail!(
            "could not create Frontdesk's database roles ({}).\n\
             Ask an administrator (a superuser, or a role with CREATEROLE that may grant BYPASSRLS) \
             to run this once on database {database:?} (`frontdesk db roles` prints it), then start frontdesk again:\n\n{}{membership};\n",
            error
                .as_db_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_else(|| error.to_string()),
            setup_sql(database, &Passwords::default()),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_working_role_logs_in_and_only_the_operator_bypasses_rls() {
        let sql = roles_sql(&Passwords::default());
        assert!(sql.contains("create role frontdesk_owner login;"));
        assert!(sql.contains("create role frontdesk_app login;"));
        assert!(sql.contains("create role frontdesk_operator login bypassrls;"));
        assert!(sql.contains("alter role frontdesk_app login nobypassrls;"));
        for legacy in LEGACY {
            assert!(sql.contains(&format!("create role {legacy} nologin;")));
        }
        assert!(!sql.contains("password"));
    }

    #[test]
    fn passwords_are_quoted_and_never_debug_printed() {
        let passwords = Passwords {
            app: Some("it's".into()),
            ..Default::default()
        };
        assert!(
            roles_sql(&passwords)
                .contains("alter role frontdesk_app login nobypassrls password 'it''s';")
        );
        assert_eq!(
            format!("{passwords:?}"),
            "Passwords { owner: none, app: ***, operator: none }"
        );
    }
}
