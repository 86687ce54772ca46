-- Events in commit order (issue 13, item 3), and a reason on a conversation's transitions
-- (item 7).
--
--   * Every event gets `sequence`: 1, 2, 3, … per tenant, set by a BEFORE INSERT trigger
--     on app.events. The trigger first locks the tenant's row in app.event_locks (held
--     until the transaction ends), then takes the tenant's highest sequence plus one. So a
--     tenant's event-writing transactions take their numbers one after the other and
--     commit in that order: sequence order is commit order, a transaction that rolls back
--     gives its numbers back (no gaps), and a reader that sees sequence n has already
--     seen every number below it. (A lock and a read rather than a counter that is
--     updated: a transaction writing thousands of events would make thousands of versions
--     of one row, each found through the ones before it — 20,000 events took 51 s.) docs/EVENTS.md, "Order", says why this and not a database sequence or
--     UUIDv7 ids (both are taken at insert, not at commit).
--   * The same trigger writes every time in `data` (a top-level field named …_at,
--     …_since, …_start, …_until or …_end holding a timestamp) as RFC 3339 UTC with a `Z`
--     and microseconds, whatever the session's time zone; so every emitter gets the one
--     format without changing app.emit_event.
--   * Deliveries go out per endpoint in sequence order, strictly: the queue carries the
--     event's sequence and a claim takes an endpoint's lowest one. A delivery waiting for
--     a retry holds the endpoint's later deliveries back (`held_until` on the endpoint,
--     so that the workers' search for due work skips them) until it is delivered or has
--     failed for good.
--   * A conversation's state change may carry a reason (`state_reason`, set with the new
--     state), recorded in its history row and its conversation.state_changed event.

-- ---------------------------------------------------------------------------------------
-- 1. The per-tenant lock.

create table app.event_locks (
    tenant_id uuid not null references app.tenants (id) on delete cascade,
    constraint event_locks_pkey primary key (tenant_id)
);
comment on table app.event_locks is 'one row per tenant, locked by every transaction that writes an event of the tenant until it ends: a tenant''s events are numbered in commit order';

-- ---------------------------------------------------------------------------------------
-- 2. The sequence of the events written so far: by id (their time), per tenant; and the
-- queued deliveries' copy of it. The backfill reads and updates rows of every tenant, so
-- the tables' policies (for their owner, who runs this) and the events' append-only
-- trigger are set aside for it, inside this migration's transaction.

alter table app.events add column sequence bigint;
comment on column app.events.sequence is 'the event''s place in its tenant''s commit order: 1, 2, 3, … (app.events_prepare)';
alter table app.webhook_queue add column sequence bigint;
comment on column app.webhook_queue.sequence is 'the event''s sequence: an endpoint''s deliveries are attempted in this order';
alter table app.events no force row level security;
alter table app.webhook_deliveries no force row level security;
alter table app.webhook_queue no force row level security;
alter table app.events disable trigger events_append_only;
update app.events e set sequence = n.sequence
  from (select x.tenant_id, x.id, row_number() over (partition by x.tenant_id order by x.id) as sequence
          from app.events x) n
 where e.tenant_id = n.tenant_id and e.id = n.id;
update app.webhook_queue q set sequence = v.sequence
  from app.webhook_deliveries d, app.events v
 where d.tenant_id = q.tenant_id and d.id = q.delivery_id and v.tenant_id = d.tenant_id and v.id = d.event_id;
alter table app.events enable trigger events_append_only;
alter table app.events force row level security;
alter table app.webhook_deliveries force row level security;
alter table app.webhook_queue force row level security;
alter table app.events alter column sequence set not null;
alter table app.webhook_queue alter column sequence set not null;
alter table app.events add constraint events_sequence_key unique (tenant_id, sequence);
drop index app.events_type_idx;
create index events_type_idx on app.events (tenant_id, type, sequence);


alter table app.event_locks enable row level security;
alter table app.event_locks force row level security;
-- Written and locked by the events trigger only: as the owner (SECURITY DEFINER
-- triggers, in the tenant's context) or as the operator (BYPASSRLS). Staff may see it.
create policy event_locks_select on app.event_locks for select to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy event_locks_owner on app.event_locks for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.event_locks to frontdesk_app;
grant select, insert, update, delete on app.event_locks to frontdesk_operator;

-- The events trigger (as the owner) reads the tenant's highest sequence, and the
-- functions that queue a delivery read the event's.
create policy events_owner_select on app.events for select to frontdesk_owner
    using (tenant_id = app.current_tenant());

-- Before an event is stored: its sequence, and its times in the one format. (Not a
-- SECURITY DEFINER function: it runs as whoever writes the event, the owner or the
-- operator, as app.emit_event does.) Event writers run in READ COMMITTED, as every
-- Frontdesk transaction does: each statement below sees what committed before it began.
create function app.events_prepare() returns trigger
    language plpgsql
    -- The read below must be one probe of events_sequence_key even while the table's
    -- statistics still say it is small (a fresh database, a long first import): a scan
    -- of the table for every event made a transaction of n events cost n².
    set enable_seqscan = off
    as $$
declare
    times jsonb;
    t jsonb;
begin
    -- The tenant's lock, until this transaction ends (a no-op once it holds it): a
    -- tenant's event writers go one at a time, from their first event to their end.
    perform from app.event_locks l where l.tenant_id = new.tenant_id for update;
    if not found then
        insert into app.event_locks (tenant_id) values (new.tenant_id) on conflict (tenant_id) do nothing;
        perform from app.event_locks l where l.tenant_id = new.tenant_id for update;
    end if;
    -- Read with the lock held: every earlier writer has committed or rolled back.
    -- (ORDER BY … LIMIT 1, not max(): one index probe however the table's statistics read)
    select e.sequence + 1 into new.sequence from app.events e
     where e.tenant_id = new.tenant_id order by e.sequence desc limit 1;
    new.sequence := coalesce(new.sequence, 1);
    -- The times: one jsonpath over the top level (no query per event), then one rewrite
    -- per time found.
    times := jsonb_path_query_array(new.data,
        '$.keyvalue() ? (@.key like_regex "(_at|_since|_start|_until|_end)$" && @.value.type() == "string"'
        ' && @.value like_regex "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?([+-][0-9]{2}(:?[0-9]{2}){0,2}|Z)$")');
    for i in 0 .. jsonb_array_length(times) - 1 loop
        t := times -> i;
        new.data := jsonb_set(new.data, array[t ->> 'key'],
                              to_jsonb(to_char((t ->> 'value')::timestamptz at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    end loop;
    return new;
end
$$;
create trigger events_10_prepare before insert on app.events
    for each row execute function app.events_prepare();

-- ---------------------------------------------------------------------------------------
-- 3. The queue in sequence order, and endpoints held by a delivery waiting for its retry.

drop index app.webhook_queue_endpoint_idx;
-- An endpoint's next delivery: one index probe.
create index webhook_queue_endpoint_idx on app.webhook_queue (tenant_id, endpoint_id, sequence);

alter table app.webhook_endpoints add column held_until timestamptz;
comment on column app.webhook_endpoints.held_until is 'while the endpoint''s next delivery waits for its retry: when it is due; the later deliveries wait behind it';
alter policy webhook_endpoints_insert on app.webhook_endpoints
    with check (app.caller_kind() = 'user' and tenant_id = app.current_tenant() and app.is_tenant_admin()
                and previous_secret is null and previous_secret_until is null and failing_since is null
                and disabled_at is null and disabled_reason is null and held_until is null);

-- replaces app.enqueue_delivery (the queue row carries the event's sequence)
create or replace function app.enqueue_delivery(p_tenant uuid, p_endpoint uuid, p_event uuid, p_due timestamptz)
    returns uuid
    language plpgsql volatile
    as $$
declare
    delivery uuid;
    v_sequence bigint;
begin
    select v.sequence into v_sequence from app.events v where v.tenant_id = p_tenant and v.id = p_event;
    insert into app.webhook_deliveries (tenant_id, id, endpoint_id, event_id, next_attempt_at)
    values (p_tenant, app.uuid_v7(), p_endpoint, p_event, p_due)
    on conflict on constraint webhook_deliveries_once do nothing
    returning id into delivery;
    if delivery is not null then
        insert into app.webhook_queue (tenant_id, delivery_id, endpoint_id, due_at, sequence)
        values (p_tenant, delivery, p_endpoint, p_due, v_sequence);
    end if;
    return delivery;
end
$$;

-- replaces app.events_fan_out (the queue rows carry the event's sequence)
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
    insert into app.webhook_queue (tenant_id, delivery_id, endpoint_id, due_at, sequence)
    select tenant_id, id, endpoint_id, next_attempt_at, new.sequence from queued;
    return null;
end
$$;

-- replaces app.retry_delivery (the queue row carries the event's sequence; the endpoint is
-- no longer held for another retry: this one is due now)
create or replace function app.retry_delivery(p_delivery uuid) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.assert_tenant_admin();
    d app.webhook_deliveries;
    v_sequence bigint;
begin
    update app.webhook_deliveries x
       set status = 'pending', next_attempt_at = now(), delivered_at = null
     where x.tenant_id = t and x.id = p_delivery
    returning x.* into d;
    if not found then
        return false;
    end if;
    select v.sequence into v_sequence from app.events v where v.tenant_id = t and v.id = d.event_id;
    -- The endpoint goes on now, unless an earlier delivery of it still waits for its retry
    -- (then that one keeps holding it).
    if not exists (select 1 from app.webhook_queue q
                    where q.tenant_id = t and q.endpoint_id = d.endpoint_id and q.sequence < v_sequence) then
        update app.webhook_endpoints w set held_until = null
         where w.tenant_id = t and w.id = d.endpoint_id and w.held_until is not null;
    end if;
    insert into app.webhook_queue as q (tenant_id, delivery_id, endpoint_id, due_at, sequence)
    values (t, d.id, d.endpoint_id, now(), v_sequence)
    on conflict (tenant_id, delivery_id) do update set due_at = excluded.due_at;
    return true;
end
$$;

-- replaces app.tenants_with_due_deliveries (an endpoint held by a retry has nothing due)
create or replace function app.tenants_with_due_deliveries(p_limit integer) returns table (tenant_id uuid)
    language plpgsql stable
    as $$
begin
    return query
    select q.tenant_id
      from app.webhook_queue q
      join app.webhook_endpoints e on e.tenant_id = q.tenant_id and e.id = q.endpoint_id
     where e.enabled and (e.held_until is null or e.held_until <= now())
       and q.due_at <= now() and (q.leased_until is null or q.leased_until <= now())
     group by q.tenant_id
     order by min(q.due_at)
     limit p_limit;
end
$$;

-- Claim up to p_limit deliveries of one tenant: for each endpoint with nothing in flight,
-- its next delivery in sequence order, when that one is due (a delivery waiting for its
-- retry holds back the endpoint's later ones). Each is leased to p_worker for p_lease.
-- Returns what the worker needs to send it: the event (with its sequence), the
-- endpoint's URL and its secrets (the previous one while its grace lasts).
-- replaces app.claim_deliveries (strictly in sequence order per endpoint; returns the event's sequence)
drop function app.claim_deliveries(uuid, uuid, integer, interval);
create function app.claim_deliveries(p_tenant uuid, p_worker uuid, p_limit integer, p_lease interval)
    returns table (tenant_id uuid, delivery_id uuid, endpoint_id uuid, attempt integer, url text,
                   secret text, previous_secret text, event_id uuid, event_type text,
                   event_created_at timestamptz, event_data jsonb, event_sequence bigint)
    language plpgsql volatile
    as $$
#variable_conflict use_column
declare
    ids uuid[];
    heads uuid[];
    v_now timestamptz := now();
begin
    -- (Every table is filtered by p_tenant itself: Citus routes a locking query to one
    -- shard only when each of its tables is.)
    -- The tenant's enabled endpoints whose next delivery (the lowest sequence) is due and
    -- which have nothing in flight, the longest waiting first, locked so that concurrent
    -- claimers take different ones (a claimer that finds one locked skips it). NO KEY
    -- UPDATE: new deliveries, which take KEY SHARE through their foreign key, are not
    -- held up.
    select array_agg(l.id) into ids
      from (select e.id
              from app.webhook_endpoints e
              cross join lateral (select q.due_at from app.webhook_queue q
                                   where q.tenant_id = p_tenant and q.endpoint_id = e.id
                                   order by q.sequence limit 1) head
             where e.tenant_id = p_tenant and e.enabled and head.due_at <= v_now
               and not exists (select 1 from app.webhook_queue f
                                where f.tenant_id = p_tenant and f.endpoint_id = e.id
                                  and f.leased_until is not null and f.leased_until > v_now)
             order by head.due_at
             limit p_limit
             for no key update of e skip locked) l;
    if ids is null then
        return;
    end if;
    -- Each endpoint's next delivery, read again under the endpoint's lock (a claimer that
    -- just let go of it has committed its lease).
    select array_agg(h.delivery_id) into heads
      from unnest(ids) as l (endpoint_id)
      cross join lateral (select q.delivery_id, q.due_at from app.webhook_queue q
                           where q.tenant_id = p_tenant and q.endpoint_id = l.endpoint_id
                           order by q.sequence limit 1) h
     where h.due_at <= v_now
       and not exists (select 1 from app.webhook_queue f
                        where f.tenant_id = p_tenant and f.endpoint_id = l.endpoint_id
                          and f.leased_until is not null and f.leased_until > v_now);
    if heads is null then
        return;
    end if;
    return query
    with leased as (
        update app.webhook_queue q
           set leased_until = v_now + p_lease, lease_worker = p_worker
         where q.tenant_id = p_tenant and q.delivery_id = any (heads)
        returning q.tenant_id, q.delivery_id, q.endpoint_id)
    select l.tenant_id, l.delivery_id, l.endpoint_id, d.attempts + 1, e.url, e.secret,
           case when e.previous_secret_until > v_now then e.previous_secret end,
           v.id, v.type, v.created_at, v.data, v.sequence
      from leased l
      join app.webhook_deliveries d on d.tenant_id = l.tenant_id and d.id = l.delivery_id
      join app.webhook_endpoints e on e.tenant_id = l.tenant_id and e.id = l.endpoint_id
      join app.events v on v.tenant_id = d.tenant_id and v.id = d.event_id;
end
$$;
revoke execute on function app.claim_deliveries(uuid, uuid, integer, interval) from public;
grant execute on function app.claim_deliveries(uuid, uuid, integer, interval) to frontdesk_operator;

-- replaces app.finish_attempt (a retry holds the endpoint's later deliveries until it is due;
-- any other outcome lets them go)
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
    -- Until when the endpoint's later deliveries wait: the retry's time, or not at all.
    v_held timestamptz := case when p_outcome = 'retry' then p_next end;
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
        update app.webhook_endpoints w set failing_since = null, held_until = null
         where w.tenant_id = p_tenant and w.id = d.endpoint_id
           and (w.failing_since is not null or w.held_until is not null);
    else
        update app.webhook_endpoints w set failing_since = coalesce(w.failing_since, p_started), held_until = v_held
         where w.tenant_id = p_tenant and w.id = d.endpoint_id
        returning w.* into e;
        if e.enabled and p_outcome = 'gone' then
            reason := 'the endpoint answered 410 Gone';
        elsif e.enabled and e.failing_since < now() - p_disable_after then
            reason := format('every attempt failed since %s', e.failing_since);
        end if;
        if reason is not null then
            update app.webhook_endpoints w set enabled = false, disabled_at = v_now, disabled_reason = reason,
                   held_until = null
             where w.tenant_id = p_tenant and w.id = e.id;
            perform app.emit_event(p_tenant, 'webhook_endpoint.disabled', e.id, jsonb_build_object(
                'id', e.id, 'url', e.url, 'reason', reason, 'failing_since', e.failing_since,
                'disabled_at', v_now));
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

-- ---------------------------------------------------------------------------------------
-- 4. A reason on a transition.

alter table app.conversations add column state_reason text;
alter table app.conversations add constraint conversations_state_reason_check check (length(state_reason) <= 2000);
comment on column app.conversations.state_reason is 'why the conversation is in its current state: the reason given with the change that moved it there (copied into its history row)';
grant update (state_reason) on app.conversations to frontdesk_app;

alter table app.conversation_transitions add column reason text;
alter table app.conversation_transitions add constraint conversation_transitions_reason_check check (length(reason) <= 2000);
comment on column app.conversation_transitions.reason is 'the reason given with the change, if any';

-- replaces app.conversations_record (the change's reason in the history row and the event)
create or replace function app.conversations_record() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    moved uuid := app.uuid_v7();
begin
    if tg_op = 'INSERT' or new.state is distinct from old.state then
        insert into app.conversation_transitions
            (tenant_id, id, conversation_id, owner_user_id, from_state, to_state, actor_user_id, actor_key_id, reason)
        values (new.tenant_id, moved, new.id, new.user_id, case when tg_op = 'UPDATE' then old.state end, new.state,
                app.current_user_id(), app.current_key_id(), new.state_reason);
    end if;
    if tg_op = 'INSERT' then
        perform app.emit_event(new.tenant_id, 'conversation.created', new.id, jsonb_build_object(
            'id', new.id, 'assistant_id', new.assistant_id, 'user_id', new.user_id,
            'contact_id', new.contact_id, 'channel', new.channel, 'title', new.title,
            'flow', new.flow_key, 'state', new.state, 'created_at', new.created_at));
    elsif new.state is distinct from old.state then
        perform app.emit_event(new.tenant_id, 'conversation.state_changed', new.id, jsonb_build_object(
            'conversation_id', new.id, 'flow', new.flow_key, 'from', old.state, 'to', new.state,
            'reason', new.state_reason, 'completed_at', new.completed_at, 'transition_id', moved));
    end if;
    if tg_op = 'UPDATE' and new.handoff_at is distinct from old.handoff_at and new.handoff_at is not null then
        perform app.emit_event(new.tenant_id, 'conversation.handoff_requested', new.id, jsonb_build_object(
            'conversation_id', new.id, 'assignee_id', new.assignee_id, 'reason', new.handoff_reason,
            'state', new.state, 'handoff_at', new.handoff_at));
    end if;
    return null;
end
$$;
