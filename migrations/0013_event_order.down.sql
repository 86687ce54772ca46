-- Back to 0012: the events without a sequence, the queue in due order, no held endpoints, no
-- transition reasons; the functions as 0002, 0005, 0007 and 0009 left them.

drop trigger events_10_prepare on app.events;
drop function app.events_prepare();
drop policy events_owner_select on app.events;
drop table app.event_locks;

alter table app.events drop constraint events_sequence_key;
drop index app.events_type_idx;
create index events_type_idx on app.events (tenant_id, type, id);
alter table app.events drop column sequence;

drop index app.webhook_queue_endpoint_idx;
create index webhook_queue_endpoint_idx on app.webhook_queue (tenant_id, endpoint_id, due_at, delivery_id);
alter table app.webhook_queue drop column sequence;

alter policy webhook_endpoints_insert on app.webhook_endpoints
    with check (app.caller_kind() = 'user' and tenant_id = app.current_tenant() and app.is_tenant_admin()
                and previous_secret is null and previous_secret_until is null and failing_since is null
                and disabled_at is null and disabled_reason is null);
alter table app.webhook_endpoints drop column held_until;

create or replace function app.enqueue_delivery(p_tenant uuid, p_endpoint uuid, p_event uuid, p_due timestamptz)
    returns uuid
    language plpgsql volatile
    as $$
declare
    delivery uuid;
begin
    insert into app.webhook_deliveries (tenant_id, id, endpoint_id, event_id, next_attempt_at)
    values (p_tenant, app.uuid_v7(), p_endpoint, p_event, p_due)
    on conflict on constraint webhook_deliveries_once do nothing
    returning id into delivery;
    if delivery is not null then
        insert into app.webhook_queue (tenant_id, delivery_id, endpoint_id, due_at)
        values (p_tenant, delivery, p_endpoint, p_due);
    end if;
    return delivery;
end
$$;

create or replace function app.events_fan_out() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if new.type = 'webhook.test' then
        return null;
    end if;
    with queued as (
        insert into app.webhook_deliveries (tenant_id, id, endpoint_id, event_id, next_attempt_at)
        select new.tenant_id, app.uuid_v7(), w.id, new.id, new.created_at
          from app.webhook_endpoints w
         where w.tenant_id = new.tenant_id and w.enabled and app.event_type_matches(w.event_types, new.type)
        on conflict on constraint webhook_deliveries_once do nothing
        returning tenant_id, id, endpoint_id, next_attempt_at)
    insert into app.webhook_queue (tenant_id, delivery_id, endpoint_id, due_at)
    select tenant_id, id, endpoint_id, next_attempt_at from queued;
    return null;
end
$$;

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
    on conflict (tenant_id, delivery_id) do update set due_at = excluded.due_at;
    return true;
end
$$;

create or replace function app.tenants_with_due_deliveries(p_limit integer) returns table (tenant_id uuid)
    language plpgsql stable
    as $$
begin
    return query
    select q.tenant_id
      from app.webhook_queue q
      join app.webhook_endpoints e on e.tenant_id = q.tenant_id and e.id = q.endpoint_id
     where e.enabled and q.due_at <= now() and (q.leased_until is null or q.leased_until <= now())
     group by q.tenant_id
     order by min(q.due_at)
     limit p_limit;
end
$$;

drop function app.claim_deliveries(uuid, uuid, integer, interval);
create function app.claim_deliveries(p_tenant uuid, p_worker uuid, p_limit integer, p_lease interval)
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

revoke execute on function app.claim_deliveries(uuid, uuid, integer, interval) from public;
grant execute on function app.claim_deliveries(uuid, uuid, integer, interval) to frontdesk_operator;

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

alter table app.conversation_transitions drop column reason;
alter table app.conversations drop column state_reason;

create or replace function app.conversations_record() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    moved uuid := app.uuid_v7();
begin
    if tg_op = 'INSERT' or new.state is distinct from old.state then
        insert into app.conversation_transitions
            (tenant_id, id, conversation_id, owner_user_id, from_state, to_state, actor_user_id, actor_key_id)
        values (new.tenant_id, moved, new.id, new.user_id, case when tg_op = 'UPDATE' then old.state end, new.state,
                app.current_user_id(), app.current_key_id());
    end if;
    if tg_op = 'INSERT' then
        perform app.emit_event(new.tenant_id, 'conversation.created', new.id, jsonb_build_object(
            'id', new.id, 'assistant_id', new.assistant_id, 'user_id', new.user_id,
            'contact_id', new.contact_id, 'channel', new.channel, 'title', new.title,
            'flow', new.flow_key, 'state', new.state, 'created_at', new.created_at));
    elsif new.state is distinct from old.state then
        perform app.emit_event(new.tenant_id, 'conversation.state_changed', new.id, jsonb_build_object(
            'conversation_id', new.id, 'flow', new.flow_key, 'from', old.state, 'to', new.state,
            'completed_at', new.completed_at, 'transition_id', moved));
    end if;
    if tg_op = 'UPDATE' and new.handoff_at is distinct from old.handoff_at and new.handoff_at is not null then
        perform app.emit_event(new.tenant_id, 'conversation.handoff_requested', new.id, jsonb_build_object(
            'conversation_id', new.id, 'assignee_id', new.assignee_id, 'reason', new.handoff_reason,
            'state', new.state, 'handoff_at', new.handoff_at));
    end if;
    return null;
end
$$;
