-- pgbench template: the SQL transaction the server runs for
-- GET /v1/tenants/{tenant}/analytics/providers?days=30 with a tenant API key
-- (crates/frontdesk-pg/src/tx.rs for the preamble, crates/frontdesk-core/src/usage/analytics.rs
-- `providers` for the statement; keep them in step). One pipeline, commit included: one
-- round trip, as the server sends it.
--
-- A random conversation n picks its tenant t, so tenants are drawn as in the wrk script;
-- the tenant tree and the differences from the server's request are as in
-- messages_get.sql ($1, the tenant id, is read from bench.tenants by t inside the
-- statement; $4 is the literal 30, and $2, $3 (from, to), $5, $6 (assistant, provider)
-- are null, as without those parameters).
\set n random(0, :targets - 1)
\set t :n / :conversations
\startpipeline
begin read only;
@CONTEXT@
select provider, model, sum(request_count)::bigint as requests,
                        sum(prompt_tokens)::bigint as prompt, sum(completion_tokens)::bigint as completion,
                        sum(cost_usd) as cost,
                        (sum(latency_ms_sum)::float8 / nullif(sum(latency_count), 0)) as latency,
                        min(first_at) as first_at, max(last_at) as last_at
                 from app.usage_daily u
                 where u.tenant_id = (select tenant_id from bench.tenants where tenant_n = :t)
                   and u.day between (select coalesce(null::date, (now() at time zone timezone)::date - (30::int - 1))
                                      from app.tenants where id = (select tenant_id from bench.tenants where tenant_n = :t))
                                 and (select coalesce(null::date, (now() at time zone timezone)::date)
                                      from app.tenants where id = (select tenant_id from bench.tenants where tenant_n = :t))
                   and (null::uuid is null or u.assistant_id = null::uuid)
                   and (null::text is null or u.provider = null::text)
                   and u.request_count > 0
                 group by provider, model order by cost desc, requests desc, provider, model;
commit;
\endpipeline
