-- pgbench template: the SQL transaction the server runs for
-- GET /v1/tenants/{tenant}/usage/today with a tenant API key
-- (crates/frontdesk-pg/src/tx.rs for the preamble, crates/frontdesk-core/src/usage/usage.rs
-- `daily` with days = 1 for the statement; keep them in step). One pipeline, commit
-- included: one round trip, as the server sends it.
--
-- A random conversation n picks its tenant t, as in analytics_providers.sql; $1, the
-- tenant id, is read from bench.tenants by t inside the statement, $4 is the literal 1,
-- and $2, $3 (from, to), $5, $6 (assistant, provider) are null.
\set n random(0, :targets - 1)
\set t :n / :conversations
\startpipeline
begin read only;
@CONTEXT@
with days as (select generate_series((select coalesce(null::date, (now() at time zone timezone)::date - (1::int - 1))
                                        from app.tenants where id = (select tenant_id from bench.tenants where tenant_n = :t)),
                                       (select coalesce(null::date, (now() at time zone timezone)::date)
                                        from app.tenants where id = (select tenant_id from bench.tenants where tenant_n = :t)),
                                       interval '1 day')::date as day)
                 select to_char(days.day, 'YYYY-MM-DD') as period, coalesce(sum(request_count), 0)::bigint as request_count,
    coalesce(sum(message_count), 0)::bigint as message_count,
    coalesce(sum(user_messages), 0)::bigint as user_messages,
    coalesce(sum(assistant_messages), 0)::bigint as assistant_messages,
    coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
    coalesce(sum(completion_tokens), 0)::bigint as completion_tokens,
    coalesce(sum(cost_usd), 0) as cost_usd,
    coalesce(sum(unpriced_count), 0)::bigint as unpriced_count
                 from days left join app.usage_daily u on u.tenant_id = (select tenant_id from bench.tenants where tenant_n = :t) and u.day = days.day
                  and (null::uuid is null or u.assistant_id = null::uuid) and (null::text is null or u.provider = null::text)
                 group by days.day order by days.day;
commit;
\endpipeline
