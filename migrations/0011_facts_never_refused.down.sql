-- Back to 0010: writes past a limit refused again (app.charge_write, app.charge_limits,
-- app.reserve_limits as 0003/0009 made them), app.limit_status as 0009 made it, creating
-- and listing tenants without the limit choices (app.create_tenant as 0009 made it,
-- app.user_tenants as 0008 made it, with their grants), and none of 0011's columns, table,
-- trigger or functions.
drop trigger conversations_05_limits on app.conversations;
drop function app.conversations_limits();

drop function app.user_tenants(uuid, bigint);
create function app.user_tenants(p_after_id uuid, p_limit bigint)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
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
           t.is_active, t.created_at, t.updated_at, t.search_language, roles[array_position(ids, t.id)]
    from app.tenants t
    where t.id = any (ids)
    order by t.id desc
    limit p_limit;
end
$$;
revoke execute on function app.user_tenants(uuid, bigint) from public;
grant execute on function app.user_tenants(uuid, bigint) to frontdesk_app;

drop function app.create_tenant(uuid, jsonb, uuid);
create function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text)
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
        search_language)
    select p_id, f.slug, f.name, coalesce(f.kind, 'other'), coalesce(f.timezone, 'UTC'),
           coalesce(f.locale, 'en'), f.email, f.phone, f.address, f.website, f.logo_url,
           f.llm_provider, f.llm_model, f.llm_temperature, f.llm_max_tokens, f.system_prompt,
           f.rate_limit_per_minute, f.daily_token_limit, f.monthly_budget_usd,
           coalesce(f.features, '{}'), coalesce(f.branding, '{}'), coalesce(f.is_active, true),
           coalesce(f.search_language, 'simple')
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
           t.is_active, t.created_at, t.updated_at, t.search_language
    from app.tenants t where t.id = p_id;
end
$$;
revoke execute on function app.create_tenant(uuid, jsonb, uuid) from public;
grant execute on function app.create_tenant(uuid, jsonb, uuid) to frontdesk_app, frontdesk_operator;

create or replace function app.limit_status()
    returns table (name text, lim numeric, used numeric, reserved numeric,
                   window_start timestamptz, resets_at timestamptz)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
-- Step by step, each read filtered by the tenant itself (one query joining the tenant,
-- its reservations, state and rollups crashed a Citus 13.2 coordinator).
declare
    v_tenant uuid := app.current_tenant();
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
    if v_tenant is null then
        return;
    end if;
    select t.timezone, t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd
      into v_zone, v_rate, v_daily, v_budget
      from app.tenants t where t.id = v_tenant;
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
      from app.limit_reservations r where r.tenant_id = v_tenant and r.status = 'active';
    select coalesce(max(s.minute_used), 0) into v_minute_used
      from app.limit_state s where s.tenant_id = v_tenant and s.minute_start = v_minute;
    select coalesce(sum(u.total_tokens), 0) into v_day_used
      from app.usage_daily u where u.tenant_id = v_tenant and u.day = v_local::date;
    select coalesce(sum(u.cost_usd), 0) into v_month_used
      from app.usage_daily u
     where u.tenant_id = v_tenant and u.day >= v_month_first
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
drop function app.limit_standing(uuid);

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
                                           t.monthly_budget_usd, p_tokens, p_cost, null, null);
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

create or replace function app.charge_write() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    t record;
begin
    select x.timezone, x.rate_limit_per_minute, x.daily_token_limit, x.monthly_budget_usd
      into t from app.tenants x where x.id = new.tenant_id;
    if t.rate_limit_per_minute is not null or t.daily_token_limit is not null
       or t.monthly_budget_usd is not null or new.reservation_id is not null then
        perform app.charge_limits(new.tenant_id, t.timezone, t.rate_limit_per_minute,
                                  t.daily_token_limit, t.monthly_budget_usd,
                                  coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
                                  coalesce(new.cost_usd, 0), new.reservation_id, new.id);
    end if;
    return new;
end
$$;

drop function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric, uuid, uuid, text, numeric);
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
    held record;
    s app.limit_state;
    first_minute integer;
    first_day bigint;
    first_month numeric;
begin
    if p_reservation is not null then
        select * into held from app.take_reservation(p_tenant, p_reservation, p_settled_by);
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

drop function app.notice_limit(uuid, text, text, text, numeric, numeric, timestamptz, timestamptz);
drop table app.limit_notices;

alter table app.usage_events drop column over_limits;
alter table app.messages drop column over_limits;
alter table app.tenants
    drop column limits_on_new_conversations,
    drop column limit_warning_share,
    drop column strict_limits;
