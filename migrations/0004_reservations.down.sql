-- Removes what 0004 created and restores the limit functions and write triggers as 0003
-- made them.

drop trigger feedback_count on app.feedback;
drop function app.feedback_count();
drop trigger feedback_before_insert on app.feedback;
drop function app.feedback_before_insert();
alter table app.feedback drop column rollup_id;
drop policy messages_owner on app.messages;
drop table app.feedback_daily;

drop trigger tenants_limits_set on app.tenants;
drop function app.tenants_limits_set();

create table app.limit_counters (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    kind         text not null,
    window_start timestamptz not null,
    used         numeric(24, 10) not null,
    constraint limit_counters_pkey primary key (tenant_id, kind, window_start),
    constraint limit_counters_kind_check check (kind in ('minute', 'day', 'month'))
);
comment on table app.limit_counters is 'usage per limit window, kept only while the tenant has that limit; old windows are swept';

alter table app.limit_counters enable row level security;
alter table app.limit_counters force row level security;
create policy limit_counters_select on app.limit_counters for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy limit_counters_owner on app.limit_counters for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.limit_counters to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.limit_counters to frontdesk_operator;

create function app.charge_window(p_tenant uuid, p_kind text, p_name text, p_start timestamptz,
                                  p_end timestamptz, p_amount numeric, p_lim numeric,
                                  p_initial numeric) returns void
    language plpgsql volatile
    as $$
declare
    total numeric;
begin
    insert into app.limit_counters as c (tenant_id, kind, window_start, used)
    values (p_tenant, p_kind, p_start, p_initial + p_amount)
    on conflict (tenant_id, kind, window_start) do update set used = c.used + excluded.used - p_initial
    returning c.used into total;
    if total > p_lim then
        raise exception 'limit % reached', p_name
            using errcode = 'FD429', constraint = p_name,
                  detail = json_build_object('limit', trim_scale(p_lim)::text,
                                             'used', trim_scale(total - p_amount)::text,
                                             'window_start', p_start, 'resets_at', p_end)::text;
    end if;
end
$$;

create function app.charge_limits(p_tenant uuid, p_zone text, p_rate integer, p_daily bigint,
                                  p_budget numeric, p_tokens bigint, p_cost numeric) returns void
    language plpgsql volatile
    as $$
declare
    minute timestamptz := date_trunc('minute', now());
    local_now timestamp := now() at time zone p_zone;
    day_start timestamptz := date_trunc('day', local_now) at time zone p_zone;
    month_start timestamptz := date_trunc('month', local_now) at time zone p_zone;
begin
    if p_rate is not null then
        perform app.charge_window(p_tenant, 'minute', 'rate_limit_per_minute', minute,
                                  minute + interval '1 minute', 1, p_rate, 0);
    end if;
    if p_daily is not null and p_tokens > 0 then
        perform app.charge_window(p_tenant, 'day', 'daily_token_limit', day_start,
            (date_trunc('day', local_now) + interval '1 day') at time zone p_zone, p_tokens, p_daily,
            coalesce((select sum(u.total_tokens) from app.usage_daily u
                      where u.tenant_id = p_tenant and u.day = local_now::date), 0));
    end if;
    if p_budget is not null and p_cost > 0 then
        perform app.charge_window(p_tenant, 'month', 'monthly_budget_usd', month_start,
            (date_trunc('month', local_now) + interval '1 month') at time zone p_zone, p_cost, p_budget,
            coalesce((select sum(u.cost_usd) from app.usage_daily u
                      where u.tenant_id = p_tenant and u.day >= date_trunc('month', local_now)::date
                        and u.day < (date_trunc('month', local_now) + interval '1 month')::date), 0));
    end if;
end
$$;

revoke execute on function app.charge_window(uuid, text, text, timestamptz, timestamptz, numeric, numeric, numeric) from public;
revoke execute on function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric) from public;

create or replace function app.messages_before_insert() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    assistant uuid;
    zone text;
    rate integer;
    daily bigint;
    budget numeric;
begin
    new.provider := lower(new.provider);
    if new.cost_usd is not null then
        new.cost_source := 'provided';
    elsif coalesce(new.prompt_tokens, new.completion_tokens) is not null then
        select c.cost_usd, c.cost_source into new.cost_usd, new.cost_source
          from app.token_cost(new.tenant_id, new.provider, new.model, new.created_at,
                              new.prompt_tokens, new.completion_tokens) c;
    else
        new.cost_source := null;
    end if;
    -- As the owner: only the transaction's tenant is reachable (conversations_owner), and
    -- the caller's own visibility is checked here, as the select policy would.
    update app.conversations c
       set message_count = c.message_count + 1,
           prompt_tokens = c.prompt_tokens + coalesce(new.prompt_tokens, 0),
           completion_tokens = c.completion_tokens + coalesce(new.completion_tokens, 0),
           cost_usd = c.cost_usd + coalesce(new.cost_usd, 0),
           last_activity_at = greatest(c.last_activity_at, new.created_at)
      from app.tenants t
     where c.tenant_id = new.tenant_id and c.id = new.conversation_id and t.id = c.tenant_id
       and (app.is_tenant_staff() or c.user_id = app.current_user_id()
            or current_setting('role') = 'frontdesk_operator')
    returning c.user_id, t.search_language, c.assistant_id, t.timezone, t.rate_limit_per_minute,
              t.daily_token_limit, t.monthly_budget_usd
         into new.owner_user_id, new.search_language, assistant, zone, rate, daily, budget;
    if not found then
        raise exception 'no conversation %', new.conversation_id
            using errcode = 'foreign_key_violation', constraint = 'messages_conversation_id_fkey',
                  table = 'messages', schema = 'app';
    end if;
    new.redacted_at := null;
    new.redacted_by := null;
    if rate is not null or daily is not null or budget is not null then
        perform app.charge_limits(new.tenant_id, zone, rate, daily, budget,
                                  coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                  coalesce(new.cost_usd, 0));
    end if;
    perform app.add_usage(new.tenant_id, new.created_at, zone, new.owner_user_id, assistant,
                          new.provider, new.model, new.cost_source is not null, 1,
                          (new.role = 'user')::int, (new.role = 'assistant')::int,
                          new.prompt_tokens, new.completion_tokens, new.cost_usd,
                          new.cost_source = 'unpriced', new.latency_ms);
    perform app.emit_event(new.tenant_id, 'message.created', new.id, jsonb_build_object(
        'id', new.id, 'conversation_id', new.conversation_id, 'role', new.role,
        'content_length', length(new.content),
        'prompt_tokens', new.prompt_tokens, 'completion_tokens', new.completion_tokens,
        'total_tokens', coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
        'model', new.model, 'provider', new.provider, 'cost_usd', trim_scale(new.cost_usd)::text,
        'cost_source', new.cost_source, 'latency_ms', new.latency_ms,
        'action_taken', new.action_taken, 'metadata', new.metadata, 'created_at', new.created_at));
    return new;
end
$$;

create or replace function app.usage_events_before_insert() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    zone text;
    rate integer;
    daily bigint;
    budget numeric;
begin
    new.provider := lower(new.provider);
    new.actor_user_id := app.current_user_id();
    new.actor_key_id := app.current_key_id();
    if new.cost_usd is not null then
        new.cost_source := 'provided';
    elsif new.unit is not null then
        new.cost_usd := case when new.unit_price_usd is null then 0
                             else round(new.quantity * new.unit_price_usd, 10) end;
        new.cost_source := case when new.unit_price_usd is null then 'unpriced' else 'provided' end;
    else
        select c.cost_usd, c.cost_source into new.cost_usd, new.cost_source
          from app.token_cost(new.tenant_id, new.provider, new.model, new.created_at,
                              new.prompt_tokens, new.completion_tokens) c;
    end if;
    select t.timezone, t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd
      into zone, rate, daily, budget
      from app.tenants t where t.id = new.tenant_id;
    if rate is not null or daily is not null or budget is not null then
        perform app.charge_limits(new.tenant_id, zone, rate, daily, budget,
                                  coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                  new.cost_usd);
    end if;
    perform app.add_usage(new.tenant_id, new.created_at, zone, new.user_id, new.assistant_id,
                          new.provider, new.model, true, 0, 0, 0, new.prompt_tokens,
                          new.completion_tokens, new.cost_usd, new.cost_source = 'unpriced', null);
    return new;
end
$$;

drop function app.limit_status();
drop function app.expire_reservations();
drop function app.cancel_reservation(uuid);
drop function app.reserve_limits(uuid, bigint, numeric, text, integer);
drop function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric, uuid, uuid);
drop function app.take_reservation(uuid, uuid, uuid);
drop function app.release_reservation(app.limit_reservations);
drop function app.refuse_past_limit(uuid, text, text, numeric, numeric, numeric, timestamptz, timestamptz);
drop table app.limit_state;
drop function app.reserved_in(uuid, text, timestamptz, boolean);
alter table app.usage_events drop column reservation_id;
alter table app.messages drop column reservation_id;
drop table app.limit_reservations;
