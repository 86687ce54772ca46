-- pgbench script: the SQL transaction the server runs for GET /v1/tenants/{tenant}, as a
-- user who owns the tenant. run.sh replaces @TENANT@ and @USER@, and passes
-- -D tenant=<uuid> for the select's $1 parameter (the server binds it the same way).
-- The whole transaction is one pipeline, one round trip, as the server sends it: pgbench's
-- fastest shape and the reference. run.sh derives a second script with `commit` moved
-- after \endpipeline (two round trips) to show what a second trip costs.
\startpipeline
begin read only;
set local role frontdesk_user;
set local frontdesk.tenant_id = '@TENANT@';
set local frontdesk.user_id = '@USER@';
set local frontdesk.member_role = 'owner';
select app.assert_principal();
select id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url, llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt, rate_limit_per_minute, daily_token_limit, monthly_budget_usd, features, branding, is_active, created_at, updated_at from app.tenants where id = :tenant;
commit;
\endpipeline
