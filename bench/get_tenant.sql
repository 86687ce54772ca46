-- pgbench script: the SQL transaction the server runs for GET /v1/tenants/{tenant}, as a
-- user who owns the tenant, in the default (postgres) context form of
-- crates/frontdesk-pg/src/tx.rs and with the statement of
-- crates/frontdesk-core/src/tenancy/tenants.rs `get` (keep them in step). pgbench logs in
-- as frontdesk_app, like the server's request pool. run.sh passes the parameters the
-- server binds as -D variables: tenant (the select's $1 and the context's $2), user,
-- caller_kind=user, member_role=owner, tenant_version=0 (a new tenant's access
-- version, migration 0010); key_id and key_scope are empty (a user names no
-- key; the server binds empty strings for absent values), which pgbench's -D refuses, so
-- each connection reads them once with \gset before its first transaction (-D empties=0).
-- The whole transaction is one pipeline, one round trip, as the server sends it: pgbench's
-- fastest shape and the reference. run.sh derives a second script with `commit` moved
-- after \endpipeline (two round trips) to show what a second trip costs.
--
-- Where this differs from what the server sends, unavoidably:
--   * The server sends `begin read only` and `commit` as simple queries (parsed each
--     time) and ends each of its four messages with a Sync (so PostgreSQL answers with
--     four ReadyForQuery and flushes after each); pgbench prepares all four statements
--     and sends one Sync at \endpipeline.
--   * pgbench sends its parameters and receives its rows in text format; the server's
--     driver sends the uuid in binary and asks for binary results.
\if :empties = 0
select '' as key_id, '' as key_scope \gset
\set empties 1
\endif
\startpipeline
begin read only;
select set_config('frontdesk.caller_kind', :caller_kind, true), set_config('frontdesk.tenant_id', :tenant, true), set_config('frontdesk.user_id', :user, true), set_config('frontdesk.member_role', :member_role, true), set_config('frontdesk.key_id', :key_id, true), set_config('frontdesk.key_scope', :key_scope, true), set_config('frontdesk.tenant_version', :tenant_version, true), app.assert_principal();
select id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url, llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt, rate_limit_per_minute, daily_token_limit, monthly_budget_usd, strict_limits, limit_warning_share, limits_on_new_conversations, features, branding, is_active, search_language, default_country, created_at, updated_at from app.tenants where id = :tenant;
commit;
\endpipeline
