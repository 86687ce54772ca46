-- Webhooks: endpoints per tenant, the delivery log with every attempt, and the queue the
-- delivery workers claim.
--
--   * The fan-out is transactional: an AFTER INSERT trigger on app.events creates one
--     delivery (and one queue row) for every enabled endpoint whose filter takes the
--     event's type, in the transaction that wrote the event. An event is never lost
--     between commit and delivery; a crash only delays it.
--   * Workers (any number of processes, as frontdesk_operator) claim with
--     `FOR NO KEY UPDATE SKIP LOCKED` on the endpoint rows, then lease at most one queue
--     row per endpoint (`leased_until`): no two workers ever send to one endpoint at once,
--     so no attempt is sent twice concurrently and a healthy endpoint gets its events in
--     order. A worker that dies leaves a lease that runs out, and the delivery is
--     attempted again: at least once.
--   * Secrets are readable by the operator only: request roles have no SELECT on the
--     secret columns, and the API shows a secret once, when it is made.

-- ---------------------------------------------------------------------------------------
-- Endpoints

-- An endpoint's filter: exact event types (message.created) or families (conversation.*).
create function app.event_types_valid(types text[]) returns boolean
    language sql immutable parallel safe
    as $$
    select cardinality(types) <= 50
       and coalesce(bool_and(t ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)*\.([a-z][a-z_]*|\*)$'), true)
    from unnest(types) t
$$;

-- Whether an endpoint's filter takes an event type (an empty filter takes every type).
create function app.event_type_matches(types text[], p_type text) returns boolean
    language sql immutable parallel safe
    as $$
    select cardinality(types) = 0 or p_type = any(types)
        or exists (select 1 from unnest(types) t
                   where right(t, 2) = '.*' and starts_with(p_type, left(t, -1)))
$$;

create table app.webhook_endpoints (
    tenant_id             uuid not null references app.tenants (id) on delete cascade,
    id                    uuid not null,
    url                   text not null,
    description           text,
    event_types           text[] not null default '{}',
    enabled               boolean not null default true,
    secret                text not null,
    previous_secret       text,
    previous_secret_until timestamptz,
    failing_since         timestamptz,
    disabled_at           timestamptz,
    disabled_reason       text,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    constraint webhook_endpoints_pkey primary key (tenant_id, id),
    constraint webhook_endpoints_url_check check (url ~ '^https?://[^\s/?#]+' and length(url) <= 2000),
    constraint webhook_endpoints_description_check check (length(description) <= 500),
    constraint webhook_endpoints_event_types_check check (app.event_types_valid(event_types)),
    constraint webhook_endpoints_secret_check check (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
    constraint webhook_endpoints_previous_secret_check
        check ((previous_secret is null) = (previous_secret_until is null)
               and previous_secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
    constraint webhook_endpoints_disabled_check
        check (enabled = (disabled_at is null) and (disabled_at is null) = (disabled_reason is null))
);
comment on table app.webhook_endpoints is 'where a tenant''s events are delivered (Standard Webhooks signatures)';
comment on column app.webhook_endpoints.event_types is 'exact types or families (conversation.*); empty: every type';
comment on column app.webhook_endpoints.previous_secret is 'the secret before the last rotation: deliveries are signed with both until previous_secret_until';
comment on column app.webhook_endpoints.failing_since is 'the first failed attempt since the last success; past the configured time the endpoint is disabled';

create trigger webhook_endpoints_touch before update on app.webhook_endpoints
    for each row execute function app.touch_updated_at();

-- Enabling clears the failure record; disabling by a request says so.
create function app.webhook_endpoints_enabled() returns trigger
    language plpgsql
    as $$
begin
    if new.enabled and not old.enabled then
        new.disabled_at := null;
        new.disabled_reason := null;
        new.failing_since := null;
    elsif old.enabled and not new.enabled and new.disabled_reason is null then
        new.disabled_at := now();
        new.disabled_reason := 'disabled';
    end if;
    return new;
end
$$;
create trigger webhook_endpoints_enabled before update of enabled on app.webhook_endpoints
    for each row execute function app.webhook_endpoints_enabled();

alter table app.webhook_endpoints enable row level security;
alter table app.webhook_endpoints force row level security;
create policy webhook_endpoints_select on app.webhook_endpoints for select to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy webhook_endpoints_insert on app.webhook_endpoints for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy webhook_endpoints_update on app.webhook_endpoints for update to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin())
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy webhook_endpoints_delete on app.webhook_endpoints for delete to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
-- The fan-out trigger and the functions below read and change endpoints as the owner.
create policy webhook_endpoints_owner on app.webhook_endpoints for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select (tenant_id, id, url, description, event_types, enabled, previous_secret_until, failing_since,
              disabled_at, disabled_reason, created_at, updated_at)
    on app.webhook_endpoints to frontdesk_user;
grant insert (tenant_id, id, url, description, event_types, enabled, secret)
    on app.webhook_endpoints to frontdesk_user;
grant update (url, description, event_types, enabled) on app.webhook_endpoints to frontdesk_user;
grant delete on app.webhook_endpoints to frontdesk_user;
grant select, insert, update, delete on app.webhook_endpoints to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Deliveries: one per (endpoint, event), with every attempt.

create table app.webhook_deliveries (
    tenant_id       uuid not null,
    id              uuid not null,
    endpoint_id     uuid not null,
    event_id        uuid not null,
    status          text not null default 'pending',
    attempts        integer not null default 0,
    next_attempt_at timestamptz,
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint webhook_deliveries_pkey primary key (tenant_id, id),
    constraint webhook_deliveries_endpoint_id_fkey foreign key (tenant_id, endpoint_id)
        references app.webhook_endpoints (tenant_id, id) on delete cascade,
    constraint webhook_deliveries_event_id_fkey foreign key (tenant_id, event_id)
        references app.events (tenant_id, id) on delete cascade,
    constraint webhook_deliveries_once unique (tenant_id, endpoint_id, event_id),
    constraint webhook_deliveries_status_check check (status in ('pending', 'delivered', 'failed')),
    constraint webhook_deliveries_attempts_check check (attempts >= 0),
    constraint webhook_deliveries_next_check check ((status = 'pending') = (next_attempt_at is not null)),
    constraint webhook_deliveries_delivered_check check ((status = 'delivered') = (delivered_at is not null))
);
comment on table app.webhook_deliveries is 'one event for one endpoint: its state and the outcome of its last attempt';
create index webhook_deliveries_endpoint_idx on app.webhook_deliveries (tenant_id, endpoint_id, id);
create index webhook_deliveries_event_idx on app.webhook_deliveries (tenant_id, event_id);
create trigger webhook_deliveries_touch before update on app.webhook_deliveries
    for each row execute function app.touch_updated_at();

alter table app.webhook_deliveries enable row level security;
alter table app.webhook_deliveries force row level security;
create policy webhook_deliveries_select on app.webhook_deliveries for select to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy webhook_deliveries_owner on app.webhook_deliveries for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.webhook_deliveries to frontdesk_user;
grant select, insert, update, delete on app.webhook_deliveries to frontdesk_operator;

create table app.webhook_attempts (
    tenant_id        uuid not null,
    id               uuid not null,
    delivery_id      uuid not null,
    attempt          integer not null,
    started_at       timestamptz not null,
    duration_ms      integer not null,
    status_code      integer,
    response_excerpt text,
    error            text,
    constraint webhook_attempts_pkey primary key (tenant_id, id),
    constraint webhook_attempts_delivery_id_fkey foreign key (tenant_id, delivery_id)
        references app.webhook_deliveries (tenant_id, id) on delete cascade,
    constraint webhook_attempts_attempt_check check (attempt >= 1),
    constraint webhook_attempts_duration_check check (duration_ms >= 0),
    constraint webhook_attempts_status_check check (status_code between 100 and 599),
    constraint webhook_attempts_excerpt_check check (length(response_excerpt) <= 1000),
    constraint webhook_attempts_error_check check (length(error) <= 1000),
    constraint webhook_attempts_outcome_check check (status_code is not null or error is not null)
);
comment on table app.webhook_attempts is 'every attempt to deliver: when, how long, the answer (status and a short excerpt) or the error; append-only';
create index webhook_attempts_delivery_idx on app.webhook_attempts (tenant_id, delivery_id, attempt);
create trigger webhook_attempts_append_only before update or delete on app.webhook_attempts
    for each row execute function app.refuse_change();

alter table app.webhook_attempts enable row level security;
alter table app.webhook_attempts force row level security;
create policy webhook_attempts_select on app.webhook_attempts for select to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy webhook_attempts_owner on app.webhook_attempts for insert to frontdesk_owner
    with check (tenant_id = app.current_tenant());
grant select on app.webhook_attempts to frontdesk_user;
grant select, insert, update, delete on app.webhook_attempts to frontdesk_operator;

-- The work: one row per pending delivery, gone when it is delivered or has failed for
-- good. Minimal, so that claiming scans little; `leased_until` marks the one a worker is
-- sending now.
create table app.webhook_queue (
    tenant_id    uuid not null,
    delivery_id  uuid not null,
    endpoint_id  uuid not null,
    due_at       timestamptz not null,
    leased_until timestamptz,
    lease_worker uuid,
    constraint webhook_queue_pkey primary key (tenant_id, delivery_id),
    -- (endpoint_id is the delivery's, copied for claiming; no foreign key of its own, so
    -- that a new delivery locks its endpoint's row once, not twice: the delivery's key
    -- goes with its endpoint already)
    constraint webhook_queue_delivery_id_fkey foreign key (tenant_id, delivery_id)
        references app.webhook_deliveries (tenant_id, id) on delete cascade,
    constraint webhook_queue_lease_check check ((leased_until is null) = (lease_worker is null))
);
comment on table app.webhook_queue is 'pending deliveries for the workers to claim (FOR NO KEY UPDATE SKIP LOCKED on the endpoint, one lease per endpoint)';
-- An endpoint's next delivery, and whether it has one in flight: one index probe each.
create index webhook_queue_endpoint_idx on app.webhook_queue (tenant_id, endpoint_id, due_at, delivery_id);
create index webhook_queue_leased_idx on app.webhook_queue (tenant_id, endpoint_id) where leased_until is not null;

alter table app.webhook_queue enable row level security;
alter table app.webhook_queue force row level security;
create policy webhook_queue_select on app.webhook_queue for select to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy webhook_queue_owner on app.webhook_queue for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.webhook_queue to frontdesk_user;
grant select, insert, update, delete on app.webhook_queue to frontdesk_operator;

-- Queue one event for one endpoint (a no-op when it is already there).
create function app.enqueue_delivery(p_tenant uuid, p_endpoint uuid, p_event uuid, p_due timestamptz)
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
revoke execute on function app.enqueue_delivery(uuid, uuid, uuid, timestamptz) from public;

-- The fan-out, in the event's transaction: one statement (no endpoints: one index probe).
-- `webhook.test` events go only where they are sent (app.send_test_event).
create function app.events_fan_out() returns trigger
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
create trigger events_fan_out after insert on app.events
    for each row execute function app.events_fan_out();

-- ---------------------------------------------------------------------------------------
-- What the API does beyond plain rows (SECURITY DEFINER: they touch the secret columns or
-- the queue, and check the caller themselves: owners and admins of the current tenant).

create function app.assert_tenant_admin() returns uuid
    language plpgsql stable
    as $$
begin
    if app.current_tenant() is null or not (app.is_tenant_admin() or current_setting('role') = 'frontdesk_operator') then
        raise exception 'webhooks are managed by the tenant''s owners and admins'
            using errcode = 'insufficient_privilege';
    end if;
    return app.current_tenant();
end
$$;

-- A new secret; the old one keeps verifying for p_grace (both signatures are sent).
create function app.rotate_webhook_secret(p_endpoint uuid, p_secret text, p_grace interval) returns boolean
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
revoke execute on function app.rotate_webhook_secret(uuid, text, interval) from public;
grant execute on function app.rotate_webhook_secret(uuid, text, interval) to frontdesk_user, frontdesk_operator;

-- A webhook.test event, queued for one endpoint only. Returns the delivery.
create function app.send_test_event(p_endpoint uuid) returns uuid
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.assert_tenant_admin();
    e app.webhook_endpoints;
    event uuid;
begin
    select * into e from app.webhook_endpoints w where w.tenant_id = t and w.id = p_endpoint;
    if not found then
        return null;
    end if;
    event := app.emit_event(t, 'webhook.test', e.id, jsonb_build_object(
        'endpoint_id', e.id, 'message', 'a test event from Frontdesk', 'created_at', now()));
    return app.enqueue_delivery(t, e.id, event, now());
end
$$;
revoke execute on function app.send_test_event(uuid) from public;
grant execute on function app.send_test_event(uuid) to frontdesk_user, frontdesk_operator;

-- Attempt a delivery again now: a pending one is moved to the front, a failed or
-- delivered one is queued again. Returns false when there is no such delivery.
create function app.retry_delivery(p_delivery uuid) returns boolean
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
revoke execute on function app.retry_delivery(uuid) from public;
grant execute on function app.retry_delivery(uuid) to frontdesk_user, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- What the workers do (as frontdesk_operator).

-- Claim up to p_limit deliveries, at most one per endpoint and only for endpoints with
-- none in flight, each leased to p_worker for p_lease. Returns what the worker needs to
-- send them: the event, the endpoint's URL and its secrets (the previous one while its
-- grace lasts).
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

-- Record one attempt and move the delivery on. Run as the operator in the delivery's
-- tenant's context (the endpoint-disabled event fans out to the tenant's other endpoints).
--   p_outcome: delivered | retry (at p_next) | failed (no attempts left) | gone (410: the
--   endpoint is disabled)
-- An endpoint failing continuously for longer than p_disable_after is disabled, and a
-- webhook_endpoint.disabled event says so. Returns false when the lease was no longer
-- this worker's (the attempt is recorded; the delivery is left to its new holder).
create function app.finish_attempt(p_tenant uuid, p_delivery uuid, p_worker uuid, p_started timestamptz,
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
revoke execute on function app.finish_attempt(uuid, uuid, uuid, timestamptz, integer, integer, text, text, text,
                                              timestamptz, interval) from public;
grant execute on function app.finish_attempt(uuid, uuid, uuid, timestamptz, integer, integer, text, text, text,
                                             timestamptz, interval) to frontdesk_operator;
