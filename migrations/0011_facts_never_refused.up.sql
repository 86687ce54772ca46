-- 0011_facts_never_refused: recording what already happened always succeeds (issue 13,
-- item 1). A message (of any role) or a usage event records a fact: the LLM was already
-- paid, the customer already wrote. Until now a write past a limit was refused with
-- FD429, so the spend went uncounted and the history had a gap. Now:
--
--   * A write is always stored and always charged to the tenant's limit state (the
--     counters keep equalling the facts). When it takes the tenant past a limit, the row
--     says so (`over_limits`: the limits it passed, the ones that would have refused it
--     before) and `usage.limit_exceeded` is emitted the first time per limit and window.
--   * Limits refuse where spending is decided: a reservation (`POST …/limits/check` with
--     `reserve`) is refused as before, and also once a limit is already past; the server
--     answers a plain check from app.limit_status. A tenant may also have chosen limits
--     that refuse a new conversation while nothing of them is left
--     (`limits_on_new_conversations`).
--   * `strict_limits` (default false) keeps the old behaviour for those who want it:
--     writes past a limit are refused (FD429) and store nothing.
--   * `limit_warning_share` (default 0.80, null: none): `usage.limit_warning` once per
--     window when the tokens of the day or the cost of the month (used and held) reach
--     that share of their limit. The rate limit's one-minute window is too short for a
--     warning to help anyone: it has none.
--
-- The once-per-window notices share one table, app.limit_notices, keyed by tenant, kind,
-- limit and window (app.limit_hits keeps recording refusals for usage.limit_reached).
-- Every function keeps 0009's Citus-safe forms: values computed into variables before
-- an INSERT or an UPDATE, step-by-step reads filtered by the tenant.

-- ---------------------------------------------------------------------------------------
-- 1. The tenant's choices.

alter table app.tenants
    add column strict_limits boolean not null default false,
    add column limit_warning_share numeric(3, 2) default 0.80,
    add column limits_on_new_conversations text[] not null default '{}',
    add constraint tenants_limit_warning_share_check
        check (limit_warning_share > 0 and limit_warning_share <= 1),
    add constraint tenants_limits_on_new_conversations_check
        check (limits_on_new_conversations
               <@ array['rate_limit_per_minute', 'daily_token_limit', 'monthly_budget_usd']);
comment on column app.tenants.strict_limits is 'true: a message or usage event past a limit is refused (FD429) and stores nothing; false (default): it is stored and flagged';
comment on column app.tenants.limit_warning_share is 'the share of the daily token limit or the monthly budget (used and held) at which usage.limit_warning is emitted, once per window; null = no warnings';
comment on column app.tenants.limits_on_new_conversations is 'the limits that refuse a new conversation while nothing of them is left in their window';

-- ---------------------------------------------------------------------------------------
-- 2. The facts say which limits they passed.

alter table app.messages
    add column over_limits text[],
    add constraint messages_over_limits_check check (cardinality(over_limits) > 0);
comment on column app.messages.over_limits is 'the limits this message took the tenant past (set by app.charge_write); null: none';
alter table app.usage_events
    add column over_limits text[],
    add constraint usage_events_over_limits_check check (cardinality(over_limits) > 0);
comment on column app.usage_events.over_limits is 'the limits this usage took the tenant past (set by app.charge_write); null: none';

-- ---------------------------------------------------------------------------------------
-- 3. Once-per-window notices: the first write past a limit (exceeded) and the first to
-- reach the warning share (warning), per limit and window.

create table app.limit_notices (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    kind         text not null,
    limit_name   text not null,
    window_start timestamptz not null,
    created_at   timestamptz not null default now(),
    constraint limit_notices_pkey primary key (tenant_id, kind, limit_name, window_start),
    constraint limit_notices_kind_check check (kind in ('warning', 'exceeded')),
    constraint limit_notices_limit_name_check
        check (limit_name in ('rate_limit_per_minute', 'daily_token_limit', 'monthly_budget_usd'))
);
comment on table app.limit_notices is 'the windows in which usage.limit_warning or usage.limit_exceeded was emitted (each once per limit and window)';
alter table app.limit_notices enable row level security;
alter table app.limit_notices force row level security;
create policy limit_notices_select on app.limit_notices for select to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy limit_notices_owner on app.limit_notices for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.limit_notices to frontdesk_app;
grant select, insert, update, delete on app.limit_notices to frontdesk_operator;

-- Emit usage.limit_<p_kind> for a limit in its window unless it was already emitted
-- there. `used` in the event is what writes used (the counter less what active
-- reservations hold), read only when the notice is new.
create function app.notice_limit(p_tenant uuid, p_kind text, p_name text, p_window_kind text,
                                 p_lim numeric, p_counter numeric, p_start timestamptz,
                                 p_end timestamptz) returns void
    language plpgsql volatile
    as $$
declare
    used numeric;
begin
    insert into app.limit_notices (tenant_id, kind, limit_name, window_start)
    values (p_tenant, p_kind, p_name, p_start)
    on conflict do nothing;
    if not found then
        return;
    end if;
    used := p_counter - app.reserved_in(p_tenant, p_window_kind, p_start, false);
    perform app.emit_event(p_tenant, 'usage.limit_' || p_kind, null,
                           jsonb_build_object('limit_name', p_name, 'limit', trim_scale(p_lim)::text,
                                              'used', trim_scale(greatest(used, 0))::text,
                                              'window_start', p_start, 'resets_at', p_end));
end
$$;
revoke execute on function app.notice_limit(uuid, text, text, text, numeric, numeric, timestamptz, timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- 4. Charging. p_mode says what a limit does to this charge:
--   'record'  a fact (message, usage event): always charged; the limits it passes are
--             returned in over_limits and noticed (usage.limit_exceeded);
--   'strict'  a fact of a tenant with strict_limits: refused (FD429) past a limit;
--   'reserve' a reservation: refused past a limit it adds to, and also while a limit is
--             already past (the tenant spent more than it allowed).
-- Warnings (p_warn_share) are noticed in every mode, for what was charged.

-- replaces app.charge_limits (a mode instead of always refusing; returns the limits passed)
drop function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric, uuid, uuid);
create function app.charge_limits(p_tenant uuid, p_zone text, p_rate integer, p_daily bigint,
                                  p_budget numeric, p_tokens bigint, p_cost numeric,
                                  p_reservation uuid, p_settled_by uuid, p_mode text,
                                  p_warn_share numeric,
                                  out minute_window timestamptz, out day_window timestamptz,
                                  out month_window timestamptz, out over_limits text[])
    language plpgsql volatile
    as $$
declare
    w_minute timestamptz := date_trunc('minute', now());
    local_now timestamp := now() at time zone p_zone;
    w_day timestamptz := date_trunc('day', local_now) at time zone p_zone;
    w_month timestamptz := date_trunc('month', local_now) at time zone p_zone;
    w_minute_end timestamptz := w_minute + interval '1 minute';
    w_day_end timestamptz := (date_trunc('day', local_now) + interval '1 day') at time zone p_zone;
    w_month_end timestamptz := (date_trunc('month', local_now) + interval '1 month') at time zone p_zone;
    -- What this write adds to each configured limit, and what its reservation gives back.
    add_writes integer := (p_rate is not null)::int;
    add_tokens bigint := case when p_daily is not null then greatest(p_tokens, 0) else 0 end;
    add_cost numeric := case when p_budget is not null then greatest(p_cost, 0) else 0 end;
    back_writes integer := 0;
    back_tokens bigint := 0;
    back_cost numeric := 0;
    held record;
    s app.limit_state;
    first_minute integer;
    first_day bigint;
    first_month numeric;
    refusing boolean := p_mode <> 'record';
    -- Which limits count against this charge: those it adds to; a reservation also
    -- counts every configured limit that is already past.
    on_minute boolean := add_writes > 0;
    on_day boolean := add_tokens > 0 or (p_mode = 'reserve' and p_daily is not null);
    on_month boolean := add_cost > 0 or (p_mode = 'reserve' and p_budget is not null);
    passed text[] := '{}';
begin
    if p_mode not in ('record', 'strict', 'reserve') then
        raise exception 'unknown charge mode %', p_mode using errcode = 'invalid_parameter_value';
    end if;
    if p_reservation is not null then
        select * into held from app.take_reservation(p_tenant, p_reservation, p_settled_by);
        back_writes := coalesce((held.minute_window = w_minute)::int, 0);
        back_tokens := case when held.day_window = w_day then held.tokens else 0 end;
        back_cost := case when held.month_window = w_month then held.cost_usd else 0 end;
    end if;
    if add_writes + back_writes = 0 and add_tokens + back_tokens = 0 and add_cost + back_cost = 0
       and not (p_mode = 'reserve' and (p_daily is not null or p_budget is not null)) then
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
        -- The tenant's first charge since a limit was set: start from the facts (read
        -- first, each call on its own: Citus takes no subquery and no table-reading call
        -- inside INSERT … VALUES, nor a call that reads tables in a query routed to a shard).
        first_minute := app.reserved_in(p_tenant, 'minute', w_minute, false)::integer;
        first_day := app.reserved_in(p_tenant, 'day', w_day, false)::bigint;
        first_month := app.reserved_in(p_tenant, 'month', w_month, false);
        select first_day + coalesce(sum(u.total_tokens), 0) into first_day
          from app.usage_daily u where u.tenant_id = p_tenant and u.day = local_now::date;
        select first_month + coalesce(sum(u.cost_usd), 0) into first_month
          from app.usage_daily u
         where u.tenant_id = p_tenant and u.day >= date_trunc('month', local_now)::date
           and u.day < (date_trunc('month', local_now) + interval '1 month')::date;
        insert into app.limit_state (tenant_id, minute_start, minute_used, day_start, day_used,
                                     month_start, month_used)
        values (p_tenant, w_minute, first_minute, w_day, first_day, w_month, first_month)
        on conflict (tenant_id) do nothing;
        -- (then charge it, or the row a concurrent first charge made, with the update)
    end loop;
    if refusing then
        if on_minute and s.minute_used > p_rate then
            perform app.refuse_past_limit(p_tenant, 'minute', 'rate_limit_per_minute', p_rate, s.minute_used,
                                          add_writes, w_minute, w_minute_end);
        end if;
        if on_day and s.day_used > p_daily then
            perform app.refuse_past_limit(p_tenant, 'day', 'daily_token_limit', p_daily, s.day_used,
                                          add_tokens, w_day, w_day_end);
        end if;
        if on_month and s.month_used > p_budget then
            perform app.refuse_past_limit(p_tenant, 'month', 'monthly_budget_usd', p_budget, s.month_used,
                                          add_cost, w_month, w_month_end);
        end if;
    else
        -- The same test as a refusal's: past the limit once what reservations past their
        -- expiry still count (they hold nothing) is left out.
        if on_minute and s.minute_used > p_rate
           and s.minute_used - app.reserved_in(p_tenant, 'minute', w_minute, true) > p_rate then
            passed := passed || 'rate_limit_per_minute'::text;
            perform app.notice_limit(p_tenant, 'exceeded', 'rate_limit_per_minute', 'minute', p_rate,
                                     s.minute_used, w_minute, w_minute_end);
        end if;
        if on_day and s.day_used > p_daily
           and s.day_used - app.reserved_in(p_tenant, 'day', w_day, true) > p_daily then
            passed := passed || 'daily_token_limit'::text;
            perform app.notice_limit(p_tenant, 'exceeded', 'daily_token_limit', 'day', p_daily,
                                     s.day_used, w_day, w_day_end);
        end if;
        if on_month and s.month_used > p_budget
           and s.month_used - app.reserved_in(p_tenant, 'month', w_month, true) > p_budget then
            passed := passed || 'monthly_budget_usd'::text;
            perform app.notice_limit(p_tenant, 'exceeded', 'monthly_budget_usd', 'month', p_budget,
                                     s.month_used, w_month, w_month_end);
        end if;
    end if;
    if p_warn_share is not null then
        if add_tokens > 0 and s.day_used >= p_warn_share * p_daily then
            perform app.notice_limit(p_tenant, 'warning', 'daily_token_limit', 'day', p_daily,
                                     s.day_used, w_day, w_day_end);
        end if;
        if add_cost > 0 and s.month_used >= p_warn_share * p_budget then
            perform app.notice_limit(p_tenant, 'warning', 'monthly_budget_usd', 'month', p_budget,
                                     s.month_used, w_month, w_month_end);
        end if;
    end if;
    minute_window := case when add_writes > 0 then w_minute end;
    day_window := case when add_tokens > 0 then w_day end;
    month_window := case when add_cost > 0 then w_month end;
    over_limits := nullif(passed, '{}');
end
$$;
revoke execute on function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric, uuid, uuid, text, numeric) from public;

-- Charge a write (a message or a usage event: both have these columns) against the
-- tenant's limits and settle the reservation it names. The write is stored and says
-- which limits it passed, unless the tenant chose strict limits (then FD429).
-- replaces app.charge_write (record the fact and flag it, or refuse when strict)
create or replace function app.charge_write() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    t record;
    passed text[];
    mode text;
begin
    select x.timezone, x.rate_limit_per_minute, x.daily_token_limit, x.monthly_budget_usd,
           x.strict_limits, x.limit_warning_share
      into t from app.tenants x where x.id = new.tenant_id;
    new.over_limits := null;
    if t.rate_limit_per_minute is not null or t.daily_token_limit is not null
       or t.monthly_budget_usd is not null or new.reservation_id is not null then
        mode := case when t.strict_limits then 'strict' else 'record' end;
        select c.over_limits into passed
          from app.charge_limits(new.tenant_id, t.timezone, t.rate_limit_per_minute,
                                 t.daily_token_limit, t.monthly_budget_usd,
                                 coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                 coalesce(new.cost_usd, 0), new.reservation_id, new.id, mode,
                                 t.limit_warning_share) c;
        new.over_limits := passed;
    end if;
    return new;
end
$$;

-- replaces app.reserve_limits (a reservation is charged in the refusing 'reserve' mode)
create or replace function app.reserve_limits(p_id uuid, p_tokens bigint, p_cost numeric, p_cost_source text,
                                   p_ttl_seconds integer,
                                   out tenant_id uuid, out id uuid, out tokens bigint, out cost_usd numeric,
                                   out cost_source text, out minute_window timestamptz,
                                   out day_window timestamptz, out month_window timestamptz, out status text,
                                   out expires_at timestamptz, out settled_at timestamptz, out settled_by uuid,
                                   out actor_user_id uuid, out actor_key_id uuid, out created_at timestamptz)
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    t app.tenants;
    w record;
    -- (values computed before the INSERT: it carries no call on Citus)
    expires timestamptz := now() + make_interval(secs => p_ttl_seconds);
    actor_user uuid := app.current_user_id();
    actor_key uuid := app.current_key_id();
begin
    if app.current_tenant() is null or not app.can_write() then
        raise exception 'reserving needs a tenant context that may write' using errcode = 'insufficient_privilege';
    end if;
    select * into strict t from app.tenants x where x.id = app.current_tenant();
    select * into w from app.charge_limits(t.id, t.timezone, t.rate_limit_per_minute, t.daily_token_limit,
                                           t.monthly_budget_usd, p_tokens, p_cost, null, null, 'reserve',
                                           t.limit_warning_share);
    insert into app.limit_reservations as x (tenant_id, id, tokens, cost_usd, cost_source, minute_window,
                                             day_window, month_window, expires_at, actor_user_id, actor_key_id)
    values (t.id, p_id, p_tokens, p_cost, p_cost_source, w.minute_window, w.day_window, w.month_window,
            expires, actor_user, actor_key)
    returning x.tenant_id, x.id, x.tokens, x.cost_usd, x.cost_source, x.minute_window, x.day_window,
              x.month_window, x.status, x.expires_at, x.settled_at, x.settled_by, x.actor_user_id,
              x.actor_key_id, x.created_at
         into reserve_limits.tenant_id, reserve_limits.id, reserve_limits.tokens, reserve_limits.cost_usd,
              reserve_limits.cost_source, reserve_limits.minute_window, reserve_limits.day_window,
              reserve_limits.month_window, reserve_limits.status, reserve_limits.expires_at,
              reserve_limits.settled_at, reserve_limits.settled_by, reserve_limits.actor_user_id,
              reserve_limits.actor_key_id, reserve_limits.created_at;
end
$$;

-- ---------------------------------------------------------------------------------------
-- 5. Where a tenant's limits stand, for any tenant (app.limit_status shows the current
-- one's; a new conversation is checked against its tenant's).

-- Step by step, each read filtered by the tenant itself (one query joining the tenant,
-- its reservations, state and rollups crashed a Citus 13.2 coordinator).
create function app.limit_standing(p_tenant uuid)
    returns table (name text, lim numeric, used numeric, reserved numeric,
                   window_start timestamptz, resets_at timestamptz)
    language plpgsql stable
    as $$
declare
    v_zone text;
    v_rate numeric;
    v_daily numeric;
    v_budget numeric;
    v_local timestamp;
    v_minute timestamptz := date_trunc('minute', now());
    v_day timestamptz;
    v_month timestamptz;
    v_month_first date;
    v_minute_all bigint;
    v_minute_live bigint;
    v_day_live numeric;
    v_month_live numeric;
    v_minute_used numeric;
    v_day_used numeric;
    v_month_used numeric;
begin
    if p_tenant is null then
        return;
    end if;
    select t.timezone, t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd
      into v_zone, v_rate, v_daily, v_budget
      from app.tenants t where t.id = p_tenant;
    if not found then
        return;
    end if;
    v_local := now() at time zone v_zone;
    v_day := date_trunc('day', v_local) at time zone v_zone;
    v_month := date_trunc('month', v_local) at time zone v_zone;
    v_month_first := date_trunc('month', v_local)::date;
    -- Active reservations: all of them are in the minute counter; live ones still hold.
    select count(*) filter (where r.minute_window = v_minute),
           count(*) filter (where r.minute_window = v_minute and r.expires_at > now()),
           coalesce(sum(r.tokens) filter (where r.day_window = v_day and r.expires_at > now()), 0),
           coalesce(sum(r.cost_usd) filter (where r.month_window = v_month and r.expires_at > now()), 0)
      into v_minute_all, v_minute_live, v_day_live, v_month_live
      from app.limit_reservations r where r.tenant_id = p_tenant and r.status = 'active';
    select coalesce(max(s.minute_used), 0) into v_minute_used
      from app.limit_state s where s.tenant_id = p_tenant and s.minute_start = v_minute;
    select coalesce(sum(u.total_tokens), 0) into v_day_used
      from app.usage_daily u where u.tenant_id = p_tenant and u.day = v_local::date;
    select coalesce(sum(u.cost_usd), 0) into v_month_used
      from app.usage_daily u
     where u.tenant_id = p_tenant and u.day >= v_month_first
       and u.day < (v_month_first + interval '1 month')::date;
    return query values
        ('rate_limit_per_minute', v_rate, greatest(v_minute_used - v_minute_all, 0),
         v_minute_live::numeric, v_minute, v_minute + interval '1 minute'),
        ('daily_token_limit', v_daily, v_day_used, v_day_live, v_day,
         (date_trunc('day', v_local) + interval '1 day') at time zone v_zone),
        ('monthly_budget_usd', v_budget, v_month_used, v_month_live, v_month,
         (date_trunc('month', v_local) + interval '1 month') at time zone v_zone);
end
$$;
revoke execute on function app.limit_standing(uuid) from public;

-- replaces app.limit_status (the current tenant's app.limit_standing)
create or replace function app.limit_status()
    returns table (name text, lim numeric, used numeric, reserved numeric,
                   window_start timestamptz, resets_at timestamptz)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    v_tenant uuid := app.current_tenant();
begin
    return query select * from app.limit_standing(v_tenant);
end
$$;

-- ---------------------------------------------------------------------------------------
-- 6. A new conversation is refused (FD429, like a refused reservation) while a limit the
-- tenant chose for it has nothing left: what writes used and live reservations hold
-- reaches the limit.

create function app.conversations_limits() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    chosen text[];
    l record;
begin
    select x.limits_on_new_conversations into chosen from app.tenants x where x.id = new.tenant_id;
    if cardinality(chosen) = 0 then
        return new;
    end if;
    for l in select * from app.limit_standing(new.tenant_id) loop
        if l.name = any (chosen) and l.lim is not null and l.used + l.reserved >= l.lim then
            raise exception 'limit % reached', l.name
                using errcode = 'FD429', constraint = l.name,
                      detail = json_build_object('limit', trim_scale(l.lim)::text,
                                                 'used', trim_scale(l.used)::text,
                                                 'window_start', l.window_start,
                                                 'resets_at', l.resets_at)::text;
        end if;
    end loop;
    return new;
end
$$;
create trigger conversations_05_limits before insert on app.conversations
    for each row execute function app.conversations_limits();

-- ---------------------------------------------------------------------------------------
-- 7. The tenant's new columns in what creating and listing tenants return.

-- replaces app.create_tenant (returns and takes the tenant's limit choices)
drop function app.create_tenant(uuid, jsonb, uuid);
create function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
                   strict_limits boolean, limit_warning_share numeric, limits_on_new_conversations text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    kind_ text := app.caller_kind();
    owner_id uuid := coalesce(app.current_user_id(), p_owner);
    new_slug text;
begin
    if kind_ is distinct from 'user' and kind_ is distinct from 'operator' then
        raise exception 'only people and the operator create tenants' using errcode = 'insufficient_privilege';
    end if;
    if kind_ = 'user' and app.current_user_id() is null then
        raise exception 'a user request names a user' using errcode = 'insufficient_privilege';
    end if;
    insert into app.tenants (
        id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url,
        llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt,
        rate_limit_per_minute, daily_token_limit, monthly_budget_usd, features, branding, is_active,
        search_language, strict_limits, limit_warning_share, limits_on_new_conversations)
    select p_id, f.slug, f.name, coalesce(f.kind, 'other'), coalesce(f.timezone, 'UTC'),
           coalesce(f.locale, 'en'), f.email, f.phone, f.address, f.website, f.logo_url,
           f.llm_provider, f.llm_model, f.llm_temperature, f.llm_max_tokens, f.system_prompt,
           f.rate_limit_per_minute, f.daily_token_limit, f.monthly_budget_usd,
           coalesce(f.features, '{}'), coalesce(f.branding, '{}'), coalesce(f.is_active, true),
           coalesce(f.search_language, 'simple'), coalesce(f.strict_limits, false),
           -- (absent: the default share; null: no warnings)
           case when p_fields ? 'limit_warning_share' then f.limit_warning_share else 0.80 end,
           coalesce(f.limits_on_new_conversations, '{}')
    from jsonb_populate_record(null::app.tenants, p_fields) f
    returning app.tenants.slug into new_slug;
    if owner_id is not null then
        insert into app.memberships (tenant_id, user_id, role) values (p_id, owner_id, 'owner');
    end if;
    -- (The slug as a value: a statement naming app.tenants would be routed whole, the
    -- call included, to the tenant's shard on Citus, where it cannot write the global table.)
    perform app.take_slug(p_id, new_slug);
    return query
    select t.id, t.slug, t.name, t.kind, t.timezone, t.locale, t.email, t.phone, t.address, t.website,
           t.logo_url, t.llm_provider, t.llm_model, t.llm_temperature, t.llm_max_tokens, t.system_prompt,
           t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd, t.features, t.branding,
           t.is_active, t.created_at, t.updated_at, t.search_language, t.strict_limits,
           t.limit_warning_share, t.limits_on_new_conversations
    from app.tenants t where t.id = p_id;
end
$$;
revoke execute on function app.create_tenant(uuid, jsonb, uuid) from public;
grant execute on function app.create_tenant(uuid, jsonb, uuid) to frontdesk_app, frontdesk_operator;

-- replaces app.user_tenants (returns the tenant's limit choices)
drop function app.user_tenants(uuid, bigint);
create function app.user_tenants(p_after_id uuid, p_limit bigint)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
                   strict_limits boolean, limit_warning_share numeric, limits_on_new_conversations text[],
                   member_role text)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    ids uuid[];
    roles text[];
begin
    if app.caller_kind() is distinct from 'user' or app.current_user_id() is null then
        return;
    end if;
    -- Two plain reads, not a join: the memberships are spread over every tenant's shard,
    -- which Citus cannot join to the tenants they name in one distributed plan.
    select array_agg(m.tenant_id), array_agg(m.role) into ids, roles
      from app.memberships m
     where m.user_id = app.current_user_id() and (p_after_id is null or m.tenant_id < p_after_id);
    if ids is null then
        return;
    end if;
    return query
    select t.id, t.slug, t.name, t.kind, t.timezone, t.locale, t.email, t.phone, t.address, t.website,
           t.logo_url, t.llm_provider, t.llm_model, t.llm_temperature, t.llm_max_tokens, t.system_prompt,
           t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd, t.features, t.branding,
           t.is_active, t.created_at, t.updated_at, t.search_language, t.strict_limits,
           t.limit_warning_share, t.limits_on_new_conversations, roles[array_position(ids, t.id)]
    from app.tenants t
    where t.id = any (ids)
    order by t.id desc
    limit p_limit;
end
$$;
revoke execute on function app.user_tenants(uuid, bigint) from public;
grant execute on function app.user_tenants(uuid, bigint) to frontdesk_app;
