-- 0009_citus_fixes: what running the whole API journey on a Citus cluster (coordinator and
-- two workers) found in the functions of 0005, 0007 and 0008, and in 0008's column-level
-- INSERT grants. Every function keeps its signature and what it returns (but
-- app.provision_user, which now returns the user's profile); the changes are in how each
-- is written, so that Citus can plan it:
--   - no clock, stable arithmetic or helper call inside a CASE or COALESCE of an UPDATE
--     (read into a variable first): take_reservation, claim_deliveries, finish_attempt,
--     rotate_webhook_secret; no call in INSERT … VALUES: reserve_limits, charge_limits;
--   - step-by-step reads filtered by the tenant instead of one query joining the tenant
--     with its rows (that query crashed a Citus 13.2 coordinator): limit_status,
--     resolve_tenant;
--   - no statement naming app.tenants around a call that writes a global table (it would
--     be routed whole to the tenant's shard): create_tenant;
--   - no read back through a SECURITY DEFINER function after the request role wrote the
--     tenant's shards (a transaction may not touch them as the owner afterwards):
--     provision_user returns the profile the caller composes the new member from;
--   - INSERT as a table privilege where 0008 granted it by column: Citus fills in a new
--     row's defaults on the coordinator and sends every column to the shard ("permission
--     denied for table webhook_endpoints_102105"); what the column grants kept out of a
--     request's new row becomes a condition of the insert policy.

-- replaces app.resolve_tenant (two plain reads by the tenant instead of an outer join)
create or replace function app.resolve_tenant(p_ref text, p_user uuid)
    returns table (tenant_id uuid, member_role text, is_active boolean)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    found_id uuid;
    active boolean;
    role_ text;
    by_slug boolean := p_ref !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
begin
    if by_slug then
        select s.tenant into found_id from app.tenant_slugs s where s.slug = p_ref;
    else
        found_id := p_ref::uuid;
    end if;
    if found_id is null then
        return;
    end if;
    -- A slug resolves only while its tenant still holds it (a row left by a tenant since
    -- deleted or renamed outside app.claim_slug resolves to nothing). Two plain reads by
    -- the tenant, not an outer join: Citus cannot always plan that one.
    select t.is_active into active from app.tenants t
     where t.id = found_id and (not by_slug or t.slug = p_ref);
    if not found then
        return;
    end if;
    if p_user is not null then
        select m.role into role_ from app.memberships m
         where m.tenant_id = found_id and m.user_id = p_user;
    end if;
    return query select found_id, role_, active;
end
$$;

-- replaces app.limit_status (step by step, each read filtered by the tenant)
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

-- replaces app.take_reservation (the clock read once, before the UPDATE)
create or replace function app.take_reservation(p_tenant uuid, p_id uuid, p_settled_by uuid,
                                     out minute_window timestamptz, out day_window timestamptz,
                                     out tokens bigint, out month_window timestamptz, out cost_usd numeric)
    language plpgsql volatile
    as $$
#variable_conflict use_column
declare
    found_status text;
    -- The clock read once: Citus refuses now() inside a CASE of an UPDATE.
    v_now timestamptz := now();
begin
    update app.limit_reservations x
       set status = case when x.expires_at > v_now then 'settled' else 'expired' end,
           settled_at = case when x.expires_at > v_now then v_now end,
           settled_by = case when x.expires_at > v_now then p_settled_by end
     where x.tenant_id = p_tenant and x.id = p_id and x.status = 'active'
    returning x.minute_window, x.day_window, x.tokens, x.month_window, x.cost_usd
         into take_reservation.minute_window, take_reservation.day_window, take_reservation.tokens,
              take_reservation.month_window, take_reservation.cost_usd;
    if found then
        return;
    end if;
    select x.status into found_status from app.limit_reservations x
     where x.tenant_id = p_tenant and x.id = p_id;
    if not found then
        raise exception 'no reservation %', p_id
            using errcode = 'foreign_key_violation', constraint = 'limit_reservations_unknown';
    elsif found_status <> 'expired' then
        raise exception 'reservation % is %', p_id, found_status
            using errcode = 'unique_violation', constraint = 'limit_reservations_used';
    end if;
end
$$;

-- replaces app.charge_limits (the first charge's facts read before the INSERT)
create or replace function app.charge_limits(p_tenant uuid, p_zone text, p_rate integer, p_daily bigint,
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

-- replaces app.reserve_limits (the INSERT's values computed before it)
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

-- replaces app.claim_deliveries (the clock read once, outside the CASE)
create or replace function app.claim_deliveries(p_tenant uuid, p_worker uuid, p_limit integer, p_lease interval)
    returns table (tenant_id uuid, delivery_id uuid, endpoint_id uuid, attempt integer, url text,
                   secret text, previous_secret text, event_id uuid, event_type text,
                   event_created_at timestamptz, event_data jsonb)
    language plpgsql volatile
    as $$
#variable_conflict use_column
declare
    ids uuid[];
    v_now timestamptz := now();
begin
    -- (Every table is filtered by p_tenant itself: Citus routes a locking query to one
    -- shard only when each of its tables is.)
    -- The tenant's enabled endpoints with a due delivery and nothing in flight, the
    -- longest waiting first (so a long backlog of one endpoint does not starve the
    -- others), locked so that concurrent claimers take different ones (a claimer that
    -- finds one locked skips it). NO KEY UPDATE: new deliveries, which take KEY SHARE
    -- through their foreign key, are not held up.
    select array_agg(l.id) into ids
      from (select e.id
              from app.webhook_endpoints e
              cross join lateral (select q.due_at from app.webhook_queue q
                                   where q.tenant_id = p_tenant and q.endpoint_id = e.id
                                   order by q.due_at limit 1) head
             where e.tenant_id = p_tenant and e.enabled and head.due_at <= now()
               and not exists (select 1 from app.webhook_queue f
                                where f.tenant_id = p_tenant and f.endpoint_id = e.id
                                  and f.leased_until is not null and f.leased_until > now())
             order by head.due_at
             limit p_limit
             for no key update of e skip locked) l;
    if ids is null then
        return;
    end if;
    return query
    with heads as (
        -- Each endpoint's next delivery (read again under the endpoint's lock: a claimer
        -- that just let go of it has committed its lease).
        select h.delivery_id
          from unnest(ids) as l (endpoint_id)
          cross join lateral (select q.delivery_id from app.webhook_queue q
                               where q.tenant_id = p_tenant and q.endpoint_id = l.endpoint_id
                                 and q.due_at <= now()
                               order by q.due_at, q.delivery_id limit 1) h
         where not exists (select 1 from app.webhook_queue f
                            where f.tenant_id = p_tenant and f.endpoint_id = l.endpoint_id
                              and f.leased_until is not null and f.leased_until > now())),
    leased as (
        update app.webhook_queue q
           set leased_until = now() + p_lease, lease_worker = p_worker
          from heads h
         where q.tenant_id = p_tenant and q.delivery_id = h.delivery_id
        returning q.tenant_id, q.delivery_id, q.endpoint_id)
    select l.tenant_id, l.delivery_id, l.endpoint_id, d.attempts + 1, e.url, e.secret,
           case when e.previous_secret_until > v_now then e.previous_secret end,
           v.id, v.type, v.created_at, v.data
      from leased l
      join app.webhook_deliveries d on d.tenant_id = l.tenant_id and d.id = l.delivery_id
      join app.webhook_endpoints e on e.tenant_id = l.tenant_id and e.id = l.endpoint_id
      join app.events v on v.tenant_id = d.tenant_id and v.id = d.event_id;
end
$$;

-- replaces app.provision_user (returns the user's profile: the caller composes the new
-- member from it, without reading the membership back through a definer function)
drop function app.provision_user(uuid, text, text);
create function app.provision_user(p_id uuid, p_email text, p_name text)
    returns table (email text, name text, last_active_at timestamptz)
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    if not (app.caller_kind() = 'operator'
            or (app.caller_kind() = 'user' and app.is_tenant_admin())) then
        raise exception 'only admins add members' using errcode = 'insufficient_privilege';
    end if;
    insert into app.users (id, email, name) values (p_id, p_email, p_name)
    on conflict (id) do nothing;
    return query select u.email, u.name, u.last_active_at from app.users u where u.id = p_id;
end
$$;
revoke execute on function app.provision_user(uuid, text, text) from public;
grant execute on function app.provision_user(uuid, text, text) to frontdesk_app, frontdesk_operator;

-- replaces app.create_tenant (the new slug taken as a value, not read in a statement naming app.tenants)
create or replace function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
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

-- replaces app.finish_attempt (the clock read into a variable before the UPDATE)
create or replace function app.finish_attempt(p_tenant uuid, p_delivery uuid, p_worker uuid, p_started timestamptz,
                                   p_duration_ms integer, p_status integer, p_excerpt text, p_error text,
                                   p_outcome text, p_next timestamptz, p_disable_after interval)
    returns boolean
    language plpgsql volatile
    as $$
declare
    d app.webhook_deliveries;
    e app.webhook_endpoints;
    mine boolean;
    reason text;
    -- The clock read once: Citus refuses now() inside a CASE of an UPDATE.
    v_now timestamptz := now();
begin
    select * into d from app.webhook_deliveries x where x.tenant_id = p_tenant and x.id = p_delivery for update;
    if not found then
        return false; -- deleted with its endpoint meanwhile
    end if;
    insert into app.webhook_attempts (tenant_id, id, delivery_id, attempt, started_at, duration_ms, status_code,
                                      response_excerpt, error)
    values (p_tenant, app.uuid_v7(), p_delivery, d.attempts + 1, p_started, greatest(p_duration_ms, 0), p_status,
            left(p_excerpt, 1000), left(p_error, 1000));
    select exists (select 1 from app.webhook_queue q where q.tenant_id = p_tenant and q.delivery_id = p_delivery
                   and q.lease_worker = p_worker) into mine;
    update app.webhook_deliveries x
       set attempts = x.attempts + 1, last_attempt_at = p_started, last_status = p_status, last_error = left(p_error, 1000),
           status = case when not mine then x.status
                         when p_outcome = 'delivered' then 'delivered'
                         when p_outcome = 'retry' then 'pending' else 'failed' end,
           delivered_at = case when mine and p_outcome = 'delivered' then v_now else x.delivered_at end,
           next_attempt_at = case when not mine then x.next_attempt_at
                                  when p_outcome = 'retry' then p_next end
     where x.tenant_id = p_tenant and x.id = p_delivery;
    if not mine then
        return false;
    end if;
    -- The endpoint before the queue row: the claimers' lock order.
    if p_outcome = 'delivered' then
        update app.webhook_endpoints w set failing_since = null
         where w.tenant_id = p_tenant and w.id = d.endpoint_id and w.failing_since is not null;
    else
        update app.webhook_endpoints w set failing_since = coalesce(w.failing_since, p_started)
         where w.tenant_id = p_tenant and w.id = d.endpoint_id
        returning w.* into e;
        if e.enabled and p_outcome = 'gone' then
            reason := 'the endpoint answered 410 Gone';
        elsif e.enabled and e.failing_since < now() - p_disable_after then
            reason := format('every attempt failed since %s', e.failing_since);
        end if;
        if reason is not null then
            update app.webhook_endpoints w set enabled = false, disabled_at = now(), disabled_reason = reason
             where w.tenant_id = p_tenant and w.id = e.id;
            perform app.emit_event(p_tenant, 'webhook_endpoint.disabled', e.id, jsonb_build_object(
                'id', e.id, 'url', e.url, 'reason', reason, 'failing_since', e.failing_since,
                'disabled_at', now()));
        end if;
    end if;
    if p_outcome = 'retry' then
        update app.webhook_queue q set due_at = p_next, leased_until = null, lease_worker = null
         where q.tenant_id = p_tenant and q.delivery_id = p_delivery;
    else
        delete from app.webhook_queue q where q.tenant_id = p_tenant and q.delivery_id = p_delivery;
    end if;
    return true;
end
$$;

-- replaces app.rotate_webhook_secret (the clock read into a variable before the UPDATE)
create or replace function app.rotate_webhook_secret(p_endpoint uuid, p_secret text, p_grace interval) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    -- Computed before the UPDATE: Citus refuses a function that is not immutable (the
    -- clock, timestamptz arithmetic) inside its CASE.
    v_until timestamptz := case when p_grace > interval '0' then now() + p_grace end;
    v_tenant uuid := app.assert_tenant_admin();
begin
    update app.webhook_endpoints e
       set previous_secret = case when p_grace > interval '0' then e.secret end,
           previous_secret_until = v_until,
           secret = p_secret
     where e.tenant_id = v_tenant and e.id = p_endpoint;
    return found;
end
$$;

-- INSERT as a table privilege, the rest of what the column grants kept out as the policy's.
grant insert on app.webhook_endpoints, app.provider_secrets, app.provider_callbacks to frontdesk_app;
grant insert on app.provider_secrets to frontdesk_operator;
alter policy webhook_endpoints_insert on app.webhook_endpoints
    with check (app.caller_kind() = 'user' and tenant_id = app.current_tenant() and app.is_tenant_admin()
                and previous_secret is null and previous_secret_until is null and failing_since is null
                and disabled_at is null and disabled_reason is null);
