-- pgbench script: GET /v1/tenants/{tenant} as get_tenant.sql, but with the context in the
-- citus form of crates/frontdesk-pg/src/tx.rs (FRONTDESK_CONTEXT_MODE=citus): one
-- `set local` per setting that has a value, then the check. run.sh replaces @TENANT@ and
-- @USER@ (SET takes no parameters: the server sends the values as literals too) and
-- passes -D tenant=<uuid> for the select's $1. For comparison with a server run in that
-- form: PGBENCH_SCRIPT=bench/get_tenant_set_local.sql FRONTDESK_CONTEXT_MODE=citus.
--
-- Where this differs from what the server sends, unavoidably: the server sends each
-- `set local`, the check, `begin read only` and `commit` as simple queries (parsed every
-- time, a Sync each: eight ReadyForQuery and flushes); pgbench prepares them all and sends
-- one Sync at \endpipeline.
\startpipeline
begin read only;
set local frontdesk.caller_kind = 'user';
set local frontdesk.tenant_id = '@TENANT@';
set local frontdesk.user_id = '@USER@';
set local frontdesk.member_role = 'owner';
set local frontdesk.tenant_version = '0';
select app.assert_principal();
select id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url, llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt, rate_limit_per_minute, daily_token_limit, monthly_budget_usd, strict_limits, limit_warning_share, limits_on_new_conversations, features, branding, is_active, search_language, default_country, created_at, updated_at from app.tenants where id = :tenant;
commit;
\endpipeline
