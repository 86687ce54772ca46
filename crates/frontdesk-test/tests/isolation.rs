//! Isolation, generated from the catalog and the route table: no test here names a
//! table or a route. A new tenant table or route is covered as soon as it exists (a new
//! table also needs a row, seeded by its domain's `seed_*` function in `fixtures`, which a
//! test below insists on).

use std::collections::BTreeSet;

use frontdesk_server::access::Access;
use frontdesk_test::{
    Reply, TestApp,
    fixtures::{Seeded, seed_tenant, signed_headers},
    spawn_app, tenant_snapshot, tenant_tables,
};
use serde_json::Value;
use uuid::Uuid;

/// The uuid columns of tenant table `table`, other than `tenant_id`.
async fn uuid_columns(admin: &tokio_postgres::Client, table: &str) -> Vec<String> {
    admin
        .query(
            "select a.attname::text from pg_attribute a join pg_class c on c.oid = a.attrelid
             join pg_namespace n on n.oid = c.relnamespace
             where n.nspname = 'app' and c.relname = $1 and a.atttypid = 'uuid'::regtype
               and a.attnum > 0 and not a.attisdropped and a.attname <> 'tenant_id'
             order by a.attnum",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Every uuid stored for `tenant` in any tenant table: none may appear in an answer to
/// another tenant.
async fn tenant_uuids(app: &TestApp, tenant: Uuid) -> BTreeSet<Uuid> {
    let admin = app.db.admin().await;
    let mut ids = BTreeSet::new();
    for table in tenant_tables(&admin).await {
        for column in uuid_columns(&admin, &table).await {
            for row in admin
                .query(&format!("select {column} from app.{table} where tenant_id = $1 and {column} is not null"), &[&tenant])
                .await
                .unwrap()
            {
                ids.insert(row.get::<_, Uuid>(0));
            }
        }
    }
    ids
}

/// A foreign id of every table, to try in other paths: from each tenant table, one of
/// `tenant`'s values of its first uuid column (its `id`, or for a table keyed by another
/// table's id, that one). One id per table, not every id, so the suite's running time
/// grows with the number of tables, not with how much the fixture seeds.
async fn sample_uuids(app: &TestApp, tenant: Uuid) -> BTreeSet<Uuid> {
    let admin = app.db.admin().await;
    let mut ids = BTreeSet::new();
    for table in tenant_tables(&admin).await {
        let Some(column) = uuid_columns(&admin, &table).await.into_iter().next() else {
            continue;
        };
        let row = admin
            .query_one(
                &format!("select min({column}::text)::uuid from app.{table} where tenant_id = $1"),
                &[&tenant],
            )
            .await
            .unwrap();
        let id: Option<Uuid> = row.get(0);
        ids.extend(id);
    }
    ids
}

/// The example request body the OpenAPI document gives for a route, or `{}`.
fn example_body(doc: &Value, method: &str, path: &str) -> Option<Value> {
    if method == "GET" || method == "DELETE" {
        return None;
    }
    let content =
        &doc["paths"][path][method.to_lowercase()]["requestBody"]["content"]["application/json"];
    // The operation's own example (e.g. a PATCH's), else the schema's.
    if let Some(example) = content.get("example") {
        return Some(example.clone());
    }
    let schema = &content["schema"];
    let example = schema["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| doc["components"]["schemas"][name].get("example"))
        .cloned();
    Some(example.unwrap_or_else(|| serde_json::json!({})))
}

/// The route's required query parameters, filled with their documented examples.
fn required_query(doc: &Value, method: &str, path: &str) -> String {
    let params = doc["paths"][path][method.to_lowercase()]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pairs: Vec<String> = params
        .iter()
        .filter(|p| p["in"] == "query" && p["required"] == true)
        .map(|p| {
            let example = p["example"]
                .as_str()
                .or(p["schema"]["example"].as_str())
                .unwrap_or_else(|| {
                    panic!(
                        "{method} {path}: required query parameter {} has no example",
                        p["name"]
                    )
                });
            format!("{}={example}", p["name"].as_str().unwrap())
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Fill a route's path: `{tenant}` with `tenant`, every other parameter with `id`.
fn fill(path: &str, tenant: &str, id: Option<Uuid>) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{tenant}" => tenant.to_owned(),
            s if s.starts_with('{') => id
                .map(|i| i.to_string())
                .unwrap_or_else(|| Uuid::now_v7().to_string()),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn has_item_param(path: &str) -> bool {
    path.split('/')
        .any(|s| s.starts_with('{') && s != "{tenant}")
}

struct World {
    app: TestApp,
    a: Seeded,
    b: Seeded,
    doc: Value,
}

async fn world() -> World {
    let app = spawn_app().await;
    let a = seed_tenant(&app, "tenant-a").await;
    let b = seed_tenant(&app, "tenant-b").await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    World { app, a, b, doc }
}

/// A reply to someone who must not see `a`: no 2xx, no 5xx, and nothing of `a` in it
/// except what the request itself sent.
fn assert_refused(
    reply: &Reply,
    allowed: &[u16],
    what: &str,
    a_ids: &BTreeSet<Uuid>,
    sent: &str,
    a: &Seeded,
) {
    assert!(
        allowed.contains(&reply.status.as_u16()),
        "{what}: got {} {}",
        reply.status,
        reply.text
    );
    assert!(
        reply.content_type().starts_with("application/problem+json"),
        "{what}: not a problem: {}",
        reply.text
    );
    for id in a_ids {
        let id = id.to_string();
        assert!(
            sent.contains(&id) || !reply.text.contains(&id),
            "{what}: leaked {id}: {}",
            reply.text
        );
    }
    assert!(
        !reply.text.contains(&a.full_key) && !reply.text.contains(&a.read_key),
        "{what}: leaked a key"
    );
}

#[tokio::test]
async fn the_seeded_tenant_has_a_row_in_every_tenant_table() {
    let w = world().await;
    let admin = w.app.db.admin().await;
    for table in tenant_tables(&admin).await {
        let n: i64 = admin
            .query_one(
                &format!("select count(*) from app.{table} where tenant_id = $1"),
                &[&w.a.id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(
            n > 0,
            "app.{table} has no row of the seeded tenant: seed one in its domain's seed_* function in fixtures"
        );
    }
}

#[tokio::test]
async fn another_tenants_credentials_see_and_change_nothing_on_any_route() {
    let w = world().await;
    let admin = w.app.db.admin().await;
    let before = tenant_snapshot(&admin, w.a.id).await;
    let a_ids = tenant_uuids(&w.app, w.a.id).await;
    let probes = sample_uuids(&w.app, w.a.id).await;
    let routes = frontdesk_server::router::route_table();
    let mut calls = 0;
    for route in routes
        .iter()
        .filter(|r| r.access.is_tenant() && r.isolation_exempt.is_none())
    {
        let body = example_body(&w.doc, &route.method, &route.path);
        let ids: Vec<Option<Uuid>> = if has_item_param(&route.path) {
            probes.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        for id in &ids {
            for (who, token) in [
                ("B's owner", &w.b.owner_token),
                ("B's full key", &w.b.full_key),
            ] {
                // On A's path, by id and by slug: 404 for items, 403 for collections.
                for reference in [w.a.id.to_string(), w.a.slug.clone()] {
                    let path = fill(&route.path, &reference, *id)
                        + &required_query(&w.doc, &route.method, &route.path);
                    let reply = w
                        .app
                        .call(&route.method, &path, Some(token), body.as_ref())
                        .await;
                    let expected: &[u16] =
                        if has_item_param(&route.path) || route.path.ends_with("{tenant}") {
                            &[404]
                        } else {
                            &[403]
                        };
                    assert_refused(
                        &reply,
                        expected,
                        &format!("{who} {} {path}", route.method),
                        &a_ids,
                        &path,
                        &w.a,
                    );
                    calls += 1;
                }
                // On B's own path, naming A's ids: nothing of A is found.
                if id.is_some() {
                    let path = fill(&route.path, &w.b.slug, *id)
                        + &required_query(&w.doc, &route.method, &route.path);
                    let reply = w
                        .app
                        .call(&route.method, &path, Some(token), body.as_ref())
                        .await;
                    assert_refused(
                        &reply,
                        &[403, 404],
                        &format!("{who} {} {path}", route.method),
                        &a_ids,
                        &path,
                        &w.a,
                    );
                    calls += 1;
                }
            }
        }
    }
    // A provider's callback carries no bearer token: B's credential of that kind is B's
    // stored secret for the provider. Signed with it, on A's path by id and by slug, it is
    // refused like an unsigned one: 401, nothing written. B's bearer credentials are no
    // credential there at all: 401 too.
    for route in routes
        .iter()
        .filter(|r| r.access == Access::Callback && r.isolation_exempt.is_none())
    {
        let body = example_body(&w.doc, &route.method, &route.path)
            .unwrap_or_else(|| serde_json::json!({}))
            .to_string();
        for reference in [w.a.id.to_string(), w.a.slug.clone()] {
            let path = route
                .path
                .replace("{provider}", "test")
                .replace("{tenant}", &reference);
            let headers = signed_headers(
                &w.b.callback_secret,
                &format!("probe-{calls}"),
                chrono::Utc::now().timestamp(),
                body.as_bytes(),
            );
            let reply = w.app.callback(&path, &headers, body.clone()).await;
            let what = format!("B's secret {} {path}", route.method);
            assert_refused(&reply, &[401], &what, &a_ids, &path, &w.a);
            for (who, token) in [
                ("B's owner", &w.b.owner_token),
                ("B's full key", &w.b.full_key),
            ] {
                let body = serde_json::from_str::<Value>(&body).unwrap();
                let reply = w
                    .app
                    .call(&route.method, &path, Some(token), Some(&body))
                    .await;
                let what = format!("{who} {} {path}", route.method);
                assert_refused(&reply, &[401], &what, &a_ids, &path, &w.a);
            }
            calls += 1;
        }
    }
    assert!(
        calls > 50,
        "too few calls ({calls}): is the route table empty?"
    );
    assert_eq!(
        tenant_snapshot(&admin, w.a.id).await,
        before,
        "tenant A's data changed"
    );
}

#[tokio::test]
async fn members_and_read_keys_cannot_use_routes_above_their_access() {
    let w = world().await;
    let admin = w.app.db.admin().await;
    let before = tenant_snapshot(&admin, w.a.id).await;
    let a_ids = tenant_uuids(&w.app, w.a.id).await;
    let mut checked = 0;
    for route in frontdesk_server::router::route_table()
        .iter()
        .filter(|r| r.isolation_exempt.is_none())
    {
        let body = example_body(&w.doc, &route.method, &route.path);
        let id = a_ids.iter().next().copied();
        let path =
            fill(&route.path, &w.a.slug, id) + &required_query(&w.doc, &route.method, &route.path);
        let mut refused: Vec<(&str, &str)> = Vec::new();
        match route.access {
            Access::TenantAdmin | Access::TenantOwner => {
                refused.push(("A's member", &w.a.member_token));
                refused.push(("A's agent", &w.a.agent_token));
                refused.push(("A's full key", &w.a.full_key));
                refused.push(("A's read key", &w.a.read_key));
                if route.access == Access::TenantOwner {
                    refused.push(("A's admin", &w.a.admin_token));
                }
            }
            Access::TenantWrite => refused.push(("A's read key", &w.a.read_key)),
            Access::User => refused.push(("A's full key", &w.a.full_key)),
            Access::Operator => {
                refused.push(("A's owner", &w.a.owner_token));
                refused.push(("A's full key", &w.a.full_key));
            }
            Access::TenantRead => {}
            // A bearer token is no credential for a provider's callback.
            Access::Callback => {
                refused.push(("A's owner", &w.a.owner_token));
                refused.push(("A's full key", &w.a.full_key));
            }
        }
        let expected = if route.access == Access::Callback {
            401
        } else {
            403
        };
        for (who, token) in refused {
            let reply = w
                .app
                .call(&route.method, &path, Some(token), body.as_ref())
                .await;
            assert_eq!(
                reply.status, expected,
                "{who} {} {path}: {}",
                route.method, reply.text
            );
            assert!(reply.content_type().starts_with("application/problem+json"));
            checked += 1;
        }
    }
    assert!(checked > 20, "too few checks ({checked})");
    assert_eq!(
        tenant_snapshot(&admin, w.a.id).await,
        before,
        "tenant A's data changed"
    );
}

#[tokio::test]
async fn as_frontdesk_user_with_tenant_b_claims_no_table_shows_a_row_of_tenant_a() {
    let w = world().await;
    let client = w.app.db.app_login().await;
    let admin = w.app.db.admin().await;
    let mut tables = tenant_tables(&admin).await;
    tables.push("tenants".into());
    tables.push("users".into());
    for (role, member_role) in [("owner", "owner"), ("member", "member")] {
        let user = if role == "owner" {
            w.b.owner
        } else {
            w.b.member
        };
        client
            .batch_execute(&format!(
                "begin; set local frontdesk.caller_kind = 'user'; set local frontdesk.tenant_id = '{}';
                 set local frontdesk.user_id = '{user}'; set local frontdesk.member_role = '{member_role}';
                 select app.assert_principal();",
                w.b.id
            ))
            .await
            .unwrap();
        for table in &tables {
            let column = match table.as_str() {
                "tenants" => "id",
                "users" => "id",
                _ => "tenant_id",
            };
            let a_key = if table == "users" { w.a.owner } else { w.a.id };
            let visible: i64 = client
                .query_one(
                    &format!("select count(*) from app.{table} where {column} = $1"),
                    &[&a_key],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                visible, 0,
                "app.{table} shows tenant A's rows to B's {role}"
            );
            if table != "users" {
                let foreign: i64 = client
                    .query_one(
                        &format!("select count(*) from app.{table} where {column} <> $1"),
                        &[&w.b.id],
                    )
                    .await
                    .unwrap()
                    .get(0);
                assert_eq!(
                    foreign, 0,
                    "app.{table} shows another tenant's rows to B's {role}"
                );
            }
        }
        client.batch_execute("rollback").await.unwrap();
    }
    // The same as the service role with B's key.
    let service = format!(
        "begin; set local frontdesk.caller_kind = 'key'; set local frontdesk.tenant_id = '{}';
         set local frontdesk.key_id = '{}'; set local frontdesk.key_scope = 'full'; select app.assert_principal();",
        w.b.id, w.b.full_key_id
    );
    for table in tenant_tables(&admin).await {
        client.batch_execute(&service).await.unwrap();
        let visible: i64 = match client
            .query_one(
                &format!("select count(*) from app.{table} where tenant_id = $1"),
                &[&w.a.id],
            )
            .await
        {
            Ok(row) => row.get(0),
            // No grant at all for the service role is as good as no rows.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                0
            }
            Err(e) => panic!("app.{table}: {e}"),
        };
        client.batch_execute("rollback").await.unwrap();
        assert_eq!(visible, 0, "app.{table} shows tenant A's rows to B's key");
    }
}

#[tokio::test]
async fn the_operator_reads_every_tenant_collection_and_the_tenant_itself() {
    let w = world().await;
    let mut checked = 0;
    for route in frontdesk_server::router::route_table()
        .iter()
        .filter(|r| r.access.is_tenant() && r.method == "GET" && !has_item_param(&r.path))
    {
        // A lookup needs something to look for (either parameter set; none is required
        // alone): the seeded contact's WhatsApp id.
        let query = if route.path.ends_with("/contacts/lookup") {
            "?channel=whatsapp&id=628111234567".to_owned()
        } else {
            required_query(&w.doc, &route.method, &route.path)
        };
        let path = fill(&route.path, &w.a.slug, None) + &query;
        let reply = w.app.get(&path, frontdesk_test::OPERATOR_TOKEN).await;
        assert_eq!(reply.status, 200, "operator GET {path}: {}", reply.text);
        checked += 1;
    }
    assert!(checked >= 3, "too few routes ({checked})");
}
