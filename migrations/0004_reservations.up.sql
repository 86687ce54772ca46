-- Limit state in one row per tenant, limit reservations, and the feedback rollup.
--
--   * app.limit_state replaces 0003's app.limit_counters (one row per tenant, limit kind
--     and window): one row per tenant holds the current minute, day and month windows
--     and what each has used, so a write charges its limits with ONE update (measured:
--     three counter rows cost a POST about 30 % of its throughput). A window that has
--     passed restarts at zero when the next write comes. The row lock makes a tenant's
--     writes take turns, across any number of servers, exactly as before. (The counters
--     are not carried over: day and month start again from the rollups, which are exact;
--     the current minute starts again at zero.)
--   * POST /limits/check may reserve an estimate (one write, tokens, cost) for a few
--     minutes: it is charged like a write, so parallel callers can never reserve more
--     than is left. The message or usage event that follows names the reservation and
--     settles it: what it holds in the current windows is given back and the real
--     amounts charged, in one statement. An unused reservation expires: from its expiry
--     on it holds nothing (a refusal discounts it at once), and the sweeper gives its
--     amounts back.
--   * A tenant's state row starts from the rollups and the active reservations, and a
--     limit set where there was none drops the row: it starts again from the facts, not
--     from a count that stopped while the tenant was unlimited.
--   * Feedback is rolled up per (tenant, day of the rated message, conversation owner,
--     assistant, provider, model) by the feedback triggers, so /analytics/feedback never
--     reads the feedback or messages tables.
--
-- Lock order, everywhere: a reservation row before the tenant's state row. So no two
-- writers can deadlock.

-- ---------------------------------------------------------------------------------------
-- Reservations

create table app.limit_reservations (
    tenant_id     uuid not null references app.tenants (id) on delete cascade,
    id            uuid not null,
    tokens        bigint not null,
    cost_usd      numeric(20, 10) not null,
    cost_source   text,
    minute_window timestamptz,
    day_window    timestamptz,
    month_window  timestamptz,
    status        text not null default 'active',
    expires_at    timestamptz not null,
    settled_at    timestamptz,
    settled_by    uuid,
    actor_user_id uuid,
    actor_key_id  uuid,
    created_at    timestamptz not null default now(),
    constraint limit_reservations_pkey primary key (tenant_id, id),
    constraint limit_reservations_amount_check check (tokens >= 0 and cost_usd >= 0),
    constraint limit_reservations_cost_source_check check (cost_source in ('provided', 'catalog', 'unpriced')),
    constraint limit_reservations_status_check check (status in ('active', 'settled', 'expired', 'cancelled')),
    constraint limit_reservations_settled_check check ((status = 'settled') = (settled_at is not null)),
    constraint limit_reservations_expiry_check check (expires_at > created_at
                                                      and expires_at <= created_at + interval '1 hour')
);
comment on table app.limit_reservations is 'estimates held against the tenant''s limits until a write settles them or they expire';
comment on column app.limit_reservations.minute_window is 'the rate window in which this reservation holds one write (null: no rate limit when reserved)';
comment on column app.limit_reservations.day_window is 'the day window in which it holds `tokens` (null: none held)';
comment on column app.limit_reservations.month_window is 'the month window in which it holds `cost_usd` (null: none held)';
comment on column app.limit_reservations.settled_by is 'the message or usage event that settled it';
create index limit_reservations_active_idx on app.limit_reservations (tenant_id, expires_at) where status = 'active';
create index limit_reservations_expiry_idx on app.limit_reservations (expires_at) where status = 'active';

alter table app.limit_reservations enable row level security;
alter table app.limit_reservations force row level security;
create policy limit_reservations_select on app.limit_reservations for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or actor_user_id = app.current_user_id()));
create policy limit_reservations_owner on app.limit_reservations for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.limit_reservations to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.limit_reservations to frontdesk_operator;

-- The writes settling a reservation name it (kept as a record of which one they settled).
alter table app.messages add column reservation_id uuid;
comment on column app.messages.reservation_id is 'the limit reservation this message settled';
alter table app.usage_events add column reservation_id uuid;
comment on column app.usage_events.reservation_id is 'the limit reservation this usage settled';

-- What the tenant's active reservations hold in one window: one write each (minute),
-- their tokens (day) or their cost (month). p_expired_only: only those past their expiry,
-- which hold nothing any more but are still in the counter until the sweeper runs.
create function app.reserved_in(p_tenant uuid, p_kind text, p_start timestamptz, p_expired_only boolean)
    returns numeric
    language sql stable
    as $$
    select coalesce(sum(case p_kind when 'minute' then 1 when 'day' then r.tokens else r.cost_usd end), 0)
    from app.limit_reservations r
    where r.tenant_id = p_tenant and r.status = 'active'
      and (not p_expired_only or r.expires_at <= now())
      and case p_kind when 'minute' then r.minute_window when 'day' then r.day_window
                      else r.month_window end = p_start
$$;
revoke execute on function app.reserved_in(uuid, text, timestamptz, boolean) from public;

-- ---------------------------------------------------------------------------------------
-- The tenant's limit state: its current windows and what each has used.

create table app.limit_state (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    minute_start timestamptz not null,
    minute_used  integer not null,
    day_start    timestamptz not null,
    day_used     bigint not null,
    month_start  timestamptz not null,
    month_used   numeric(24, 10) not null,
    constraint limit_state_pkey primary key (tenant_id)
);
comment on table app.limit_state is 'per tenant: writes this minute, tokens this day, cost this month (tenant time zone), reservations included; locked by every write it charges';

alter table app.limit_state enable row level security;
alter table app.limit_state force row level security;
create policy limit_state_select on app.limit_state for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy limit_state_owner on app.limit_state for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.limit_state to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.limit_state to frontdesk_operator;

drop function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric);
drop function app.charge_window(uuid, text, text, timestamptz, timestamptz, numeric, numeric, numeric);
drop table app.limit_counters;

-- A write took a window past its limit: refuse it (FD429, with what the server needs for
-- its 429 in the detail), unless what is over is held by reservations past their expiry
-- (they hold nothing, even before the sweeper gives them back).
create function app.refuse_past_limit(p_tenant uuid, p_kind text, p_name text, p_lim numeric,
                                      p_used numeric, p_added numeric, p_start timestamptz,
                                      p_end timestamptz) returns void
    language plpgsql
    as $$
declare
    used numeric := p_used - app.reserved_in(p_tenant, p_kind, p_start, true);
begin
    if used > p_lim then
        raise exception 'limit % reached', p_name
            using errcode = 'FD429', constraint = p_name,
                  detail = json_build_object('limit', trim_scale(p_lim)::text,
                                             'used', trim_scale(used - p_added)::text,
                                             'window_start', p_start, 'resets_at', p_end)::text;
    end if;
end
$$;
revoke execute on function app.refuse_past_limit(uuid, text, text, numeric, numeric, numeric, timestamptz, timestamptz) from public;

-- Give back what a reservation holds, where its windows are still the tenant's current
-- ones (a window that has passed is over).
create function app.release_reservation(r app.limit_reservations) returns void
    language sql volatile
    as $$
    update app.limit_state x
       set minute_used = greatest(x.minute_used - (r.minute_window = x.minute_start)::int, 0),
           day_used = greatest(x.day_used - case when r.day_window = x.day_start then r.tokens else 0 end, 0),
           month_used = greatest(x.month_used - case when r.month_window = x.month_start then r.cost_usd else 0 end, 0)
     where x.tenant_id = r.tenant_id
$$;
revoke execute on function app.release_reservation(app.limit_reservations) from public;
grant execute on function app.release_reservation(app.limit_reservations) to frontdesk_operator;

-- Take the reservation a write names: lock it and mark it settled (or expired, when the
-- write comes after its expiry). Returns it as it was while active (its holds are still
-- in the counters), or null when it had already expired and been released. Unknown → 422,
-- already settled or cancelled → 409.
create function app.take_reservation(p_tenant uuid, p_id uuid, p_settled_by uuid)
    returns app.limit_reservations
    language plpgsql volatile
    as $$
declare
    r app.limit_reservations;
begin
    update app.limit_reservations x
       set status = case when x.expires_at > now() then 'settled' else 'expired' end,
           settled_at = case when x.expires_at > now() then now() end,
           settled_by = case when x.expires_at > now() then p_settled_by end
     where x.tenant_id = p_tenant and x.id = p_id and x.status = 'active'
    returning x.* into r;
    if found then
        return r;
    end if;
    select x.* into r from app.limit_reservations x where x.tenant_id = p_tenant and x.id = p_id;
    if not found then
        raise exception 'no reservation %', p_id
            using errcode = 'foreign_key_violation', constraint = 'limit_reservations_unknown';
    elsif r.status <> 'expired' then
        raise exception 'reservation % is %', p_id, r.status
            using errcode = 'unique_violation', constraint = 'limit_reservations_used';
    end if;
    return null;
end
$$;
revoke execute on function app.take_reservation(uuid, uuid, uuid) from public;

-- Charge one write (or reservation) against the tenant's limits, after settling the
-- reservation it names, in one update of the tenant's state row; refuse (FD429) past a
-- limit. Returns the windows charged. Run by the SECURITY DEFINER triggers and by
-- app.reserve_limits, as the owner.
create function app.charge_limits(p_tenant uuid, p_zone text, p_rate integer, p_daily bigint,
                                  p_budget numeric, p_tokens bigint, p_cost numeric,
                                  p_reservation uuid, p_settled_by uuid,
                                  out minute_window timestamptz, out day_window timestamptz,
                                  out month_window timestamptz)
    language plpgsql volatile
    as $$
declare
    w_minute timestamptz := date_trunc('minute', now());
    local_now timestamp := now() at time zone p_zone;
    w_day timestamptz := date_trunc('day', local_now) at time zone p_zone;
    w_month timestamptz := date_trunc('month', local_now) at time zone p_zone;
    -- What this write adds to each configured limit, and what its reservation gives back.
    add_writes integer := (p_rate is not null)::int;
    add_tokens bigint := case when p_daily is not null then greatest(p_tokens, 0) else 0 end;
    add_cost numeric := case when p_budget is not null then greatest(p_cost, 0) else 0 end;
    back_writes integer := 0;
    back_tokens bigint := 0;
    back_cost numeric := 0;
    held app.limit_reservations;
    s app.limit_state;
begin
    if p_reservation is not null then
        held := app.take_reservation(p_tenant, p_reservation, p_settled_by);
        back_writes := coalesce((held.minute_window = w_minute)::int, 0);
        back_tokens := case when held.day_window = w_day then held.tokens else 0 end;
        back_cost := case when held.month_window = w_month then held.cost_usd else 0 end;
    end if;
    if add_writes + back_writes = 0 and add_tokens + back_tokens = 0 and add_cost + back_cost = 0 then
        return;
    end if;
    loop
        -- A window that has passed restarts at zero.
        update app.limit_state x
           set minute_used = greatest(case when x.minute_start = w_minute then x.minute_used else 0 end
                                      + add_writes - back_writes, 0),
               minute_start = w_minute,
               day_used = greatest(case when x.day_start = w_day then x.day_used else 0 end
                                   + add_tokens - back_tokens, 0),
               day_start = w_day,
               month_used = greatest(case when x.month_start = w_month then x.month_used else 0 end
                                     + add_cost - back_cost, 0),
               month_start = w_month
         where x.tenant_id = p_tenant
        returning x.* into s;
        exit when found;
        -- The tenant's first charge since a limit was set: start from the facts.
        insert into app.limit_state (tenant_id, minute_start, minute_used, day_start, day_used,
                                     month_start, month_used)
        values (p_tenant, w_minute, app.reserved_in(p_tenant, 'minute', w_minute, false)::integer,
                w_day,
                app.reserved_in(p_tenant, 'day', w_day, false)::bigint
                + (select coalesce(sum(u.total_tokens), 0) from app.usage_daily u
                    where u.tenant_id = p_tenant and u.day = local_now::date),
                w_month,
                app.reserved_in(p_tenant, 'month', w_month, false)
                + (select coalesce(sum(u.cost_usd), 0) from app.usage_daily u
                    where u.tenant_id = p_tenant and u.day >= date_trunc('month', local_now)::date
                      and u.day < (date_trunc('month', local_now) + interval '1 month')::date))
        on conflict (tenant_id) do nothing;
        -- (then charge it, or the row a concurrent first charge made, with the update)
    end loop;
    if add_writes > 0 and s.minute_used > p_rate then
        perform app.refuse_past_limit(p_tenant, 'minute', 'rate_limit_per_minute', p_rate, s.minute_used,
                                      add_writes, w_minute, w_minute + interval '1 minute');
    end if;
    if add_tokens > 0 and s.day_used > p_daily then
        perform app.refuse_past_limit(p_tenant, 'day', 'daily_token_limit', p_daily, s.day_used, add_tokens,
                                      w_day, (date_trunc('day', local_now) + interval '1 day') at time zone p_zone);
    end if;
    if add_cost > 0 and s.month_used > p_budget then
        perform app.refuse_past_limit(p_tenant, 'month', 'monthly_budget_usd', p_budget, s.month_used, add_cost,
                                      w_month, (date_trunc('month', local_now) + interval '1 month') at time zone p_zone);
    end if;
    minute_window := case when add_writes > 0 then w_minute end;
    day_window := case when add_tokens > 0 then w_day end;
    month_window := case when add_cost > 0 then w_month end;
end
$$;
revoke execute on function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric, uuid, uuid) from public;

-- Reserve an estimate against the current tenant's limits for p_ttl_seconds, or refuse
-- with FD429 and hold nothing. Any principal that may write.
create function app.reserve_limits(p_id uuid, p_tokens bigint, p_cost numeric, p_cost_source text,
                                   p_ttl_seconds integer) returns app.limit_reservations
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t app.tenants;
    w record;
    r app.limit_reservations;
begin
    if app.current_tenant() is null or not app.can_write() then
        raise exception 'reserving needs a tenant context that may write' using errcode = 'insufficient_privilege';
    end if;
    select * into strict t from app.tenants where id = app.current_tenant();
    select * into w from app.charge_limits(t.id, t.timezone, t.rate_limit_per_minute, t.daily_token_limit,
                                           t.monthly_budget_usd, p_tokens, p_cost, null, null);
    insert into app.limit_reservations (tenant_id, id, tokens, cost_usd, cost_source, minute_window,
                                        day_window, month_window, expires_at, actor_user_id, actor_key_id)
    values (t.id, p_id, p_tokens, p_cost, p_cost_source, w.minute_window, w.day_window, w.month_window,
            now() + make_interval(secs => p_ttl_seconds), app.current_user_id(), app.current_key_id())
    returning * into r;
    return r;
end
$$;
revoke execute on function app.reserve_limits(uuid, bigint, numeric, text, integer) from public;
grant execute on function app.reserve_limits(uuid, bigint, numeric, text, integer) to frontdesk_user, frontdesk_service;

-- Cancel one of the current tenant's reservations (staff, or the person who made it) and
-- give back what it holds. Returns its status afterwards; null when there is no such
-- reservation the caller may see.
create function app.cancel_reservation(p_id uuid) returns text
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    r app.limit_reservations;
begin
    if not app.can_write() then
        raise exception 'cancelling needs a context that may write' using errcode = 'insufficient_privilege';
    end if;
    update app.limit_reservations x set status = 'cancelled'
     where x.tenant_id = app.current_tenant() and x.id = p_id and x.status = 'active'
       and (app.is_tenant_staff() or x.actor_user_id = app.current_user_id())
    returning x.* into r;
    if found then
        perform app.release_reservation(r);
        return r.status;
    end if;
    select x.status into r.status from app.limit_reservations x
     where x.tenant_id = app.current_tenant() and x.id = p_id
       and (app.is_tenant_staff() or x.actor_user_id = app.current_user_id());
    return r.status;
end
$$;
revoke execute on function app.cancel_reservation(uuid) from public;
grant execute on function app.cancel_reservation(uuid) to frontdesk_user, frontdesk_service;

-- The sweeper (as the operator, across tenants): mark expired reservations and give back
-- what they hold; delete finished reservations after a week. Returns how many expired.
create function app.expire_reservations() returns integer
    language plpgsql volatile
    as $$
declare
    expired app.limit_reservations[];
    r app.limit_reservations;
begin
    with due as (
        select x.tenant_id, x.id from app.limit_reservations x
         where x.status = 'active' and x.expires_at <= now()
         order by x.expires_at limit 1000 for update skip locked),
    marked as (
        update app.limit_reservations x set status = 'expired' from due
         where x.tenant_id = due.tenant_id and x.id = due.id
        returning x as r)
    select coalesce(array_agg(m.r), '{}') into expired from marked m;
    -- Tenant by tenant (the state rows' lock order), after every reservation row was locked.
    for r in select * from unnest(expired) order by tenant_id loop
        perform app.release_reservation(r);
    end loop;
    delete from app.limit_reservations x where x.status <> 'active' and x.created_at < now() - interval '7 days';
    return cardinality(expired);
end
$$;
revoke execute on function app.expire_reservations() from public;
grant execute on function app.expire_reservations() to frontdesk_operator;

-- The current tenant's limits and where each stands in its window, tenant-wide (a member
-- is limited by the tenant's totals, so they are shown its totals): `used` is what writes
-- used, `reserved` what live reservations hold.
create function app.limit_status()
    returns table (name text, lim numeric, used numeric, reserved numeric,
                   window_start timestamptz, resets_at timestamptz)
    language sql stable security definer
    set search_path = pg_catalog
    as $$
    with w as (
        select t.id, t.rate_limit_per_minute::numeric as rate, t.daily_token_limit::numeric as daily,
               t.monthly_budget_usd as budget, date_trunc('minute', now()) as minute_start,
               date_trunc('day', l.local_now) at time zone t.timezone as day_start,
               (date_trunc('day', l.local_now) + interval '1 day') at time zone t.timezone as day_end,
               date_trunc('month', l.local_now) at time zone t.timezone as month_start,
               (date_trunc('month', l.local_now) + interval '1 month') at time zone t.timezone as month_end,
               l.local_now::date as today, date_trunc('month', l.local_now)::date as month_first
          from app.tenants t cross join lateral (select now() at time zone t.timezone as local_now) l
         where t.id = app.current_tenant()),
    -- Active reservations: all of them are in the minute counter; live ones still hold.
    held as (
        select count(*) filter (where r.minute_window = w.minute_start) as minute_all,
               count(*) filter (where r.minute_window = w.minute_start and r.expires_at > now()) as minute_live,
               coalesce(sum(r.tokens) filter (where r.day_window = w.day_start and r.expires_at > now()), 0) as day_live,
               coalesce(sum(r.cost_usd) filter (where r.month_window = w.month_start and r.expires_at > now()), 0) as month_live
          from w left join app.limit_reservations r on r.tenant_id = w.id and r.status = 'active')
    select x.name, x.lim, x.used, x.reserved, x.window_start, x.resets_at
      from w cross join held cross join lateral (values
        ('rate_limit_per_minute', w.rate,
         greatest(coalesce((select x.minute_used from app.limit_state x where x.tenant_id = w.id
                            and x.minute_start = w.minute_start), 0) - held.minute_all, 0)::numeric,
         held.minute_live::numeric, w.minute_start, w.minute_start + interval '1 minute'),
        ('daily_token_limit', w.daily,
         (select coalesce(sum(u.total_tokens), 0)::numeric from app.usage_daily u
           where u.tenant_id = w.id and u.day = w.today),
         held.day_live::numeric, w.day_start, w.day_end),
        ('monthly_budget_usd', w.budget,
         (select coalesce(sum(u.cost_usd), 0) from app.usage_daily u
           where u.tenant_id = w.id and u.day >= w.month_first
             and u.day < (w.month_first + interval '1 month')::date),
         held.month_live, w.month_start, w.month_end)) x (name, lim, used, reserved, window_start, resets_at)
$$;
revoke execute on function app.limit_status() from public;
grant execute on function app.limit_status() to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- A limit set where there was none starts from the facts: the tenant's state row, which
-- stopped counting that kind while the tenant was unlimited, is dropped (the next write
-- makes it again from the rollups and the active reservations).

create function app.tenants_limits_set() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    delete from app.limit_state x where x.tenant_id = new.id;
    return null;
end
$$;
create trigger tenants_limits_set after update of rate_limit_per_minute, daily_token_limit, monthly_budget_usd
    on app.tenants for each row
    when ((old.rate_limit_per_minute is null and new.rate_limit_per_minute is not null)
          or (old.daily_token_limit is null and new.daily_token_limit is not null)
          or (old.monthly_budget_usd is null and new.monthly_budget_usd is not null))
    execute function app.tenants_limits_set();

-- ---------------------------------------------------------------------------------------
-- The write triggers, now settling the reservation a write names.

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
    if rate is not null or daily is not null or budget is not null or new.reservation_id is not null then
        perform app.charge_limits(new.tenant_id, zone, rate, daily, budget,
                                  coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                  coalesce(new.cost_usd, 0), new.reservation_id, new.id);
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
    if rate is not null or daily is not null or budget is not null or new.reservation_id is not null then
        perform app.charge_limits(new.tenant_id, zone, rate, daily, budget,
                                  coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                  new.cost_usd, new.reservation_id, new.id);
    end if;
    perform app.add_usage(new.tenant_id, new.created_at, zone, new.user_id, new.assistant_id,
                          new.provider, new.model, true, 0, 0, 0, new.prompt_tokens,
                          new.completion_tokens, new.cost_usd, new.cost_source = 'unpriced', null);
    return new;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Feedback rollup: ratings per (tenant, day of the rated message in the tenant's time
-- zone, conversation owner, assistant, provider, model). Each rating remembers its rollup
-- row (rollup_id, set on insert), so changing or removing it adjusts the same row even if
-- the conversation's assistant or owner changed since. Ratings given before this
-- migration are not in the rollup.

create table app.feedback_daily (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    id           uuid not null,
    day          date not null,
    user_id      uuid,
    assistant_id uuid,
    provider     text,
    model        text,
    positive     bigint not null default 0,
    negative     bigint not null default 0,
    constraint feedback_daily_pkey primary key (tenant_id, id),
    constraint feedback_daily_key unique nulls not distinct (tenant_id, day, user_id, assistant_id, provider, model),
    constraint feedback_daily_counts_check check (positive >= 0 and negative >= 0)
);
comment on table app.feedback_daily is 'ratings per tenant, day of the rated message, owner, assistant, provider, model: kept by the feedback triggers';
comment on column app.feedback_daily.user_id is 'the rated conversation''s owner (null for contacts'' conversations)';

alter table app.feedback_daily enable row level security;
alter table app.feedback_daily force row level security;
create policy feedback_daily_select on app.feedback_daily for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy feedback_daily_owner on app.feedback_daily for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.feedback_daily to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.feedback_daily to frontdesk_operator;

-- The feedback trigger reads the rated message as the owner.
create policy messages_owner on app.messages for select to frontdesk_owner
    using (tenant_id = app.current_tenant());

alter table app.feedback add column rollup_id uuid;
comment on column app.feedback.rollup_id is 'the feedback_daily row this rating counts in (set by the insert trigger)';

create function app.feedback_before_insert() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    new.rollup_id := null;
    insert into app.feedback_daily as f (tenant_id, id, day, user_id, assistant_id, provider, model)
    select m.tenant_id, app.uuid_v7(), (m.created_at at time zone t.timezone)::date, m.owner_user_id,
           c.assistant_id, m.provider, m.model
      from app.messages m
      join app.conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
      join app.tenants t on t.id = m.tenant_id
     where m.tenant_id = new.tenant_id and m.id = new.message_id
    on conflict on constraint feedback_daily_key do update set positive = f.positive
    returning f.id into new.rollup_id;
    return new;
end
$$;
create trigger feedback_before_insert before insert on app.feedback
    for each row execute function app.feedback_before_insert();

create function app.feedback_count() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if tg_op = 'UPDATE' and old.rating = new.rating then
        return null;
    end if;
    if tg_op in ('UPDATE', 'DELETE') then
        update app.feedback_daily f
           set positive = f.positive - (old.rating = 1)::int, negative = f.negative - (old.rating = -1)::int
         where f.tenant_id = old.tenant_id and f.id = old.rollup_id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        update app.feedback_daily f
           set positive = f.positive + (new.rating = 1)::int, negative = f.negative + (new.rating = -1)::int
         where f.tenant_id = new.tenant_id and f.id = new.rollup_id;
    end if;
    return null;
end
$$;
create trigger feedback_count after insert or delete or update of rating on app.feedback
    for each row execute function app.feedback_count();
