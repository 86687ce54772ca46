-- Reverts 0007_distribution_rules: the schema of 0006 exactly (the functions 0007
-- replaced get their earlier bodies back, copied from the migrations that made them).

-- 6. Background work
drop function app.claim_deliveries(uuid, uuid, integer, interval);
drop function app.tenants_with_due_deliveries(integer);
create function app.claim_deliveries(p_worker uuid, p_limit integer, p_lease interval)
    returns table (tenant_id uuid, delivery_id uuid, endpoint_id uuid, attempt integer, url text,
                   secret text, previous_secret text, event_id uuid, event_type text,
                   event_created_at timestamptz, event_data jsonb)
    language plpgsql volatile
    as $$
#variable_conflict use_column
declare
    tenants uuid[];
    ids uuid[];
begin
    -- Enabled endpoints with a due delivery and nothing in flight, the longest waiting
    -- first (so a long backlog of one endpoint does not starve the others), locked so
    -- that concurrent claimers take different ones (a claimer that finds one locked skips
    -- it). NO KEY UPDATE: new deliveries, which take KEY SHARE through their foreign key,
    -- are not held up.
    select array_agg(l.tenant_id), array_agg(l.id) into tenants, ids
      from (select e.tenant_id, e.id
              from app.webhook_endpoints e
              cross join lateral (select q.due_at from app.webhook_queue q
                                   where q.tenant_id = e.tenant_id and q.endpoint_id = e.id
                                   order by q.due_at limit 1) head
             where e.enabled and head.due_at <= now()
               and not exists (select 1 from app.webhook_queue f
                                where f.tenant_id = e.tenant_id and f.endpoint_id = e.id
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
        select h.tenant_id, h.delivery_id
          from unnest(tenants, ids) as l (tenant_id, endpoint_id)
          cross join lateral (select q.tenant_id, q.delivery_id from app.webhook_queue q
                               where q.tenant_id = l.tenant_id and q.endpoint_id = l.endpoint_id
                                 and q.due_at <= now()
                               order by q.due_at, q.delivery_id limit 1) h
         where not exists (select 1 from app.webhook_queue f
                            where f.tenant_id = l.tenant_id and f.endpoint_id = l.endpoint_id
                              and f.leased_until is not null and f.leased_until > now())),
    leased as (
        update app.webhook_queue q
           set leased_until = now() + p_lease, lease_worker = p_worker
          from heads h
         where q.tenant_id = h.tenant_id and q.delivery_id = h.delivery_id
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
revoke execute on function app.claim_deliveries(uuid, integer, interval) from public;
grant execute on function app.claim_deliveries(uuid, integer, interval) to frontdesk_operator;

drop function app.expire_reservations(uuid);
drop function app.tenants_to_sweep();
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

-- 5. Reservations
create or replace function app.cancel_reservation(p_id uuid) returns text
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

drop function app.reserve_limits(uuid, bigint, numeric, text, integer);
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

drop function app.take_reservation(uuid, uuid, uuid);
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

drop function app.release_reservation(uuid, timestamptz, timestamptz, bigint, timestamptz, numeric);
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

-- 3 and 4. The SQL functions and the ON CONFLICT bodies as they were
create or replace function app.retry_delivery(p_delivery uuid) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.assert_tenant_admin();
    d app.webhook_deliveries;
begin
    update app.webhook_deliveries x
       set status = 'pending', next_attempt_at = now(), delivered_at = null
     where x.tenant_id = t and x.id = p_delivery
    returning x.* into d;
    if not found then
        return false;
    end if;
    insert into app.webhook_queue as q (tenant_id, delivery_id, endpoint_id, due_at)
    values (t, d.id, d.endpoint_id, now())
    on conflict (tenant_id, delivery_id) do update set due_at = now();
    return true;
end
$$;

create or replace function app.provider_secret(p_tenant uuid, p_provider text)
    returns table (secret text, fingerprint text)
    language sql stable security definer
    set search_path = pg_catalog
    as $$
    select s.secret, s.fingerprint from app.provider_secrets s
    where s.tenant_id = p_tenant and s.provider = p_provider
$$;

create or replace function app.limit_status()
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

create or replace function app.reserved_in(p_tenant uuid, p_kind text, p_start timestamptz, p_expired_only boolean)
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

create or replace function app.add_usage(p_tenant uuid, p_at timestamptz, p_zone text, p_user uuid,
                              p_assistant uuid, p_provider text, p_model text, p_request boolean,
                              p_messages int, p_user_messages int, p_assistant_messages int,
                              p_prompt bigint, p_completion bigint, p_cost numeric,
                              p_unpriced boolean, p_latency_ms int) returns void
    language sql volatile
    as $$
    insert into app.usage_daily as u (tenant_id, id, day, user_id, assistant_id, provider, model,
                                      request_count, message_count, user_messages, assistant_messages,
                                      prompt_tokens, completion_tokens, cost_usd, unpriced_count,
                                      latency_ms_sum, latency_count, first_at, last_at)
    values (p_tenant, app.uuid_v7(), (p_at at time zone p_zone)::date, p_user, p_assistant,
            p_provider, p_model, p_request::int, p_messages, p_user_messages, p_assistant_messages,
            coalesce(p_prompt, 0), coalesce(p_completion, 0), coalesce(p_cost, 0),
            coalesce(p_unpriced, false)::int, coalesce(p_latency_ms, 0),
            (p_latency_ms is not null)::int, p_at, p_at)
    on conflict on constraint usage_daily_key do update
       set request_count = u.request_count + excluded.request_count,
           message_count = u.message_count + excluded.message_count,
           user_messages = u.user_messages + excluded.user_messages,
           assistant_messages = u.assistant_messages + excluded.assistant_messages,
           prompt_tokens = u.prompt_tokens + excluded.prompt_tokens,
           completion_tokens = u.completion_tokens + excluded.completion_tokens,
           cost_usd = u.cost_usd + excluded.cost_usd,
           unpriced_count = u.unpriced_count + excluded.unpriced_count,
           latency_ms_sum = u.latency_ms_sum + excluded.latency_ms_sum,
           latency_count = u.latency_count + excluded.latency_count,
           first_at = least(u.first_at, excluded.first_at),
           last_at = greatest(u.last_at, excluded.last_at)
$$;

create or replace function app.price_at(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                             out input_usd_per_mtok numeric, out output_usd_per_mtok numeric,
                             out cached_input_usd_per_mtok numeric)
    language sql stable
    as $$
    select p.input_usd_per_mtok, p.output_usd_per_mtok, p.cached_input_usd_per_mtok from (
        (select t.input_usd_per_mtok, t.output_usd_per_mtok, t.cached_input_usd_per_mtok, 1 as rank
         from app.tenant_model_prices t
         where t.tenant_id = p_tenant and t.provider = p_provider and t.model = p_model
           and t.effective_from <= p_at
         order by t.effective_from desc limit 1)
        union all
        (select g.input_usd_per_mtok, g.output_usd_per_mtok, g.cached_input_usd_per_mtok, 2
         from app.model_prices g
         where g.provider = p_provider and g.model = p_model and g.effective_from <= p_at
         order by g.effective_from desc limit 1)) p
    order by p.rank limit 1
$$;

create or replace function app.flow_definition(p_tenant uuid, p_key text,
                                    out initial_state text, out states text[],
                                    out terminal_states text[], out transitions jsonb)
    language sql stable
    as $$
    select initial_state, states, terminal_states, transitions from (
        select f.initial_state, f.states, f.terminal_states, f.transitions, 1 as rank
        from app.flows f where f.tenant_id = p_tenant and f.key = p_key
        union all
        select b.initial_state, b.states, b.terminal_states, b.transitions, 2
        from app.builtin_flows b where b.key = p_key) d
    order by rank limit 1
$$;

create or replace function app.touch_user(p_id uuid, p_email text, p_name text) returns void
    language sql volatile security definer
    set search_path = pg_catalog
    as $$
    insert into app.users as u (id, email, name) values (p_id, p_email, p_name)
    on conflict (id) do update
        set email = coalesce(excluded.email, u.email),
            name = coalesce(excluded.name, u.name),
            last_active_at = now()
$$;

-- 2. The SET NULL keys
drop trigger conversations_release on app.conversations;
drop function app.conversations_release();
drop trigger assistants_release on app.assistants;
drop function app.assistants_release();
drop trigger contacts_release on app.contacts;
drop function app.contacts_release();
drop trigger memberships_release on app.memberships;
drop function app.memberships_release();
drop policy usage_events_owner on app.usage_events;

alter table app.conversations drop constraint conversations_assignee_id_fkey,
    add constraint conversations_assignee_id_fkey foreign key (tenant_id, assignee_id)
        references app.memberships (tenant_id, user_id) on delete set null (assignee_id);
alter table app.conversations drop constraint conversations_contact_id_fkey,
    add constraint conversations_contact_id_fkey foreign key (tenant_id, contact_id)
        references app.contacts (tenant_id, id) on delete set null (contact_id);
alter table app.conversations drop constraint conversations_user_id_fkey,
    add constraint conversations_user_id_fkey foreign key (tenant_id, user_id)
        references app.memberships (tenant_id, user_id) on delete set null (user_id);
alter table app.usage_events drop constraint usage_events_assistant_id_fkey,
    add constraint usage_events_assistant_id_fkey foreign key (tenant_id, assistant_id)
        references app.assistants (tenant_id, id) on delete set null (assistant_id);
alter table app.usage_events drop constraint usage_events_conversation_id_fkey,
    add constraint usage_events_conversation_id_fkey foreign key (tenant_id, conversation_id)
        references app.conversations (tenant_id, id) on delete set null (conversation_id);
alter table app.usage_events drop constraint usage_events_user_id_fkey,
    add constraint usage_events_user_id_fkey foreign key (tenant_id, user_id)
        references app.memberships (tenant_id, user_id) on delete set null (user_id);

-- 1. Global lookups
create or replace function app.authenticate_key(p_hash bytea)
    returns table (tenant_id uuid, key_id uuid, scopes text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    return query
    update app.api_keys a set last_used_at = now()
    from app.tenants t
    where a.secret_hash = p_hash and a.revoked_at is null and t.id = a.tenant_id and t.is_active
      and (a.last_used_at is null or a.last_used_at < now() - interval '1 minute')
    returning a.tenant_id, a.id, a.scopes;
    if not found then
        return query
        select a.tenant_id, a.id, a.scopes
        from app.api_keys a join app.tenants t on t.id = a.tenant_id
        where a.secret_hash = p_hash and a.revoked_at is null and t.is_active;
    end if;
end
$$;

create or replace function app.resolve_tenant(p_ref text, p_user uuid)
    returns table (tenant_id uuid, member_role text, is_active boolean)
    language sql stable security definer
    set search_path = pg_catalog
    as $$
    select t.id, m.role, t.is_active
    from app.tenants t
    left join app.memberships m on m.tenant_id = t.id and m.user_id = p_user
    where t.slug = p_ref
       or (p_ref ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
           and t.id = p_ref::uuid)
$$;

drop trigger api_keys_hash on app.api_keys;
drop function app.api_keys_hash();
drop trigger tenants_slug on app.tenants;
drop function app.tenants_slug();
alter table app.api_keys add constraint api_keys_secret_hash_key unique (secret_hash);
alter table app.tenants add constraint tenants_slug_key unique (slug);
drop table app.api_key_hashes;
drop table app.tenant_slugs;
