-- Back to 0008: the functions as 0005, 0007 and 0008 wrote them, and INSERT granted by
-- column again (revoking the table privilege revokes the column ones too, so they are
-- granted anew).

revoke insert on app.webhook_endpoints, app.provider_secrets, app.provider_callbacks from frontdesk_app;
revoke insert on app.provider_secrets from frontdesk_operator;
grant insert (tenant_id, provider, secret, fingerprint) on app.provider_secrets to frontdesk_operator;
grant insert (tenant_id, id, provider, external_id, payload) on app.provider_callbacks to frontdesk_app;
grant insert (tenant_id, provider, secret, fingerprint) on app.provider_secrets to frontdesk_app;
grant insert (tenant_id, id, url, description, event_types, enabled, secret) on app.webhook_endpoints to frontdesk_app;
alter policy webhook_endpoints_insert on app.webhook_endpoints
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));

create or replace function app.rotate_webhook_secret(p_endpoint uuid, p_secret text, p_grace interval) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    update app.webhook_endpoints e
       set previous_secret = case when p_grace > interval '0' then e.secret end,
           previous_secret_until = case when p_grace > interval '0' then now() + p_grace end,
           secret = p_secret
     where e.tenant_id = app.assert_tenant_admin() and e.id = p_endpoint;
    return found;
end
$$;

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
           delivered_at = case when mine and p_outcome = 'delivered' then now() else x.delivered_at end,
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
    from jsonb_populate_record(null::app.tenants, p_fields) f;
    if owner_id is not null then
        insert into app.memberships (tenant_id, user_id, role) values (p_id, owner_id, 'owner');
    end if;
    perform app.take_slug(p_id, (select t.slug from app.tenants t where t.id = p_id));
    return query
    select t.id, t.slug, t.name, t.kind, t.timezone, t.locale, t.email, t.phone, t.address, t.website,
           t.logo_url, t.llm_provider, t.llm_model, t.llm_temperature, t.llm_max_tokens, t.system_prompt,
           t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd, t.features, t.branding,
           t.is_active, t.created_at, t.updated_at, t.search_language
    from app.tenants t where t.id = p_id;
end
$$;

drop function app.provision_user(uuid, text, text);
create function app.provision_user(p_id uuid, p_email text, p_name text) returns void
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
end
$$;
revoke execute on function app.provision_user(uuid, text, text) from public;
grant execute on function app.provision_user(uuid, text, text) to frontdesk_operator, frontdesk_app;

create or replace function app.claim_deliveries(p_tenant uuid, p_worker uuid, p_limit integer, p_lease interval)
    returns table (tenant_id uuid, delivery_id uuid, endpoint_id uuid, attempt integer, url text,
                   secret text, previous_secret text, event_id uuid, event_type text,
                   event_created_at timestamptz, event_data jsonb)
    language plpgsql volatile
    as $$
#variable_conflict use_column
declare
    ids uuid[];
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
           case when e.previous_secret_until > now() then e.previous_secret end,
           v.id, v.type, v.created_at, v.data
      from leased l
      join app.webhook_deliveries d on d.tenant_id = l.tenant_id and d.id = l.delivery_id
      join app.webhook_endpoints e on e.tenant_id = l.tenant_id and e.id = l.endpoint_id
      join app.events v on v.tenant_id = d.tenant_id and v.id = d.event_id;
end
$$;

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
            now() + make_interval(secs => p_ttl_seconds), app.current_user_id(), app.current_key_id())
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

create or replace function app.take_reservation(p_tenant uuid, p_id uuid, p_settled_by uuid,
                                     out minute_window timestamptz, out day_window timestamptz,
                                     out tokens bigint, out month_window timestamptz, out cost_usd numeric)
    language plpgsql volatile
    as $$
#variable_conflict use_column
declare
    found_status text;
begin
    update app.limit_reservations x
       set status = case when x.expires_at > now() then 'settled' else 'expired' end,
           settled_at = case when x.expires_at > now() then now() end,
           settled_by = case when x.expires_at > now() then p_settled_by end
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

create or replace function app.limit_status()
    returns table (name text, lim numeric, used numeric, reserved numeric,
                   window_start timestamptz, resets_at timestamptz)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
begin
    return query
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
         greatest(coalesce((select s.minute_used from app.limit_state s where s.tenant_id = w.id
                            and s.minute_start = w.minute_start), 0) - held.minute_all, 0)::numeric,
         held.minute_live::numeric, w.minute_start, w.minute_start + interval '1 minute'),
        ('daily_token_limit', w.daily,
         (select coalesce(sum(u.total_tokens), 0)::numeric from app.usage_daily u
           where u.tenant_id = w.id and u.day = w.today),
         held.day_live::numeric, w.day_start, w.day_end),
        ('monthly_budget_usd', w.budget,
         (select coalesce(sum(u.cost_usd), 0) from app.usage_daily u
           where u.tenant_id = w.id and u.day >= w.month_first
             and u.day < (w.month_first + interval '1 month')::date),
         held.month_live, w.month_start, w.month_end)) x (name, lim, used, reserved, window_start, resets_at);
end
$$;

create or replace function app.resolve_tenant(p_ref text, p_user uuid)
    returns table (tenant_id uuid, member_role text, is_active boolean)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    found_id uuid;
    by_slug boolean := p_ref !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
begin
    if by_slug then
        select s.tenant into found_id from app.tenant_slugs s where s.slug = p_ref;
    else
        found_id := p_ref::uuid;
    end if;
    -- A slug resolves only while its tenant still holds it (a row left by a tenant since
    -- deleted or renamed outside app.claim_slug resolves to nothing).
    return query
    select t.id, m.role, t.is_active
    from app.tenants t
    left join app.memberships m on m.tenant_id = t.id and m.user_id = p_user
    where t.id = found_id and (not by_slug or t.slug = p_ref);
end
$$;
