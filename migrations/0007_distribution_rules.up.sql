-- Distribution rules (issue 11): the schema as Citus can shard it by tenant, so that
-- `frontdesk migrate verify` (crates/frontdesk-pg/src/verify.rs) can hold every later
-- migration to the same rules without a Citus cluster. What changes:
--
--   1. Unique keys of tenant tables include the tenant. The two global lookups move to
--      small global tables meant as Citus reference tables, keyed by what is looked up:
--        app.tenant_slugs    (slug → tenant), replacing tenants_slug_key
--        app.api_key_hashes  (secret hash → tenant, key), replacing api_keys_secret_hash_key
--      They hold no `tenant_id` column (they are not tenant tables), have row-level
--      security enabled with no policy and no grant, so request roles never read them;
--      only SECURITY DEFINER functions owned by the owner do (app.resolve_tenant,
--      app.authenticate_key). AFTER triggers on app.tenants and app.api_keys keep them,
--      as the owner, in the statement that writes the tenant row (a duplicate slug is
--      refused by tenant_slugs_pkey, the constraint the API maps to "slug is taken").
--      These two triggers are the one exception to "triggers never touch a global table"
--      (on Citus a trigger runs on a shard): tenants and keys are written by
--      app.create_tenant and plain statements today; when 0008 rewrites those writes,
--      the lookups can be written there instead.
--   2. No ON DELETE SET NULL on keys holding tenant_id: the six such keys become plain
--      keys, and a BEFORE DELETE trigger on the referenced table nulls the referencing
--      column for the same tenant first (as the SET NULL action did; the update runs as
--      the owner, within the owner policies of the tenant in context). When the tenant
--      itself is being deleted, the triggers do nothing: the referencing rows are deleted
--      by its cascade (the SET NULL actions used to run after those deletes).
--   3. No SQL function with parameters that reads tables (Citus cannot plan them):
--      they are PL/pgSQL now, with the same results.
--   4. No volatile function in ON CONFLICT DO UPDATE SET: the value goes into the
--      inserted row and the update takes `excluded.…`.
--   5. No table row type in a function signature: the reservation functions take and
--      return the columns instead.
--   6. Background work locks per tenant: the webhook claim and the reservation sweep
--      first read which tenants have due work (a plain read), then claim per tenant with
--      `… where tenant_id = p_tenant … for update skip locked`.
--
-- Left as they are, for 0008_login_roles, which rewrites them for new login roles:
-- app.user_tenants, app.tenant_members, app.create_tenant, app.provision_user,
-- app.assert_principal, app.assert_callback, app.rotate_webhook_secret and the functions
-- reading current_setting('role') (verify.rs allows them by name until then).

-- ---------------------------------------------------------------------------------------
-- 1. Global lookups

create table app.tenant_slugs (
    slug   text not null,
    tenant uuid not null,
    constraint tenant_slugs_pkey primary key (slug),
    constraint tenant_slugs_tenant_key unique (tenant)
);
comment on table app.tenant_slugs is 'global: every tenant''s slug, unique across tenants (a reference table on Citus); kept by the tenants_slug trigger, read by app.resolve_tenant';
alter table app.tenant_slugs enable row level security;
insert into app.tenant_slugs (slug, tenant) select t.slug, t.id from app.tenants t;

create table app.api_key_hashes (
    secret_hash bytea not null,
    tenant      uuid not null,
    key_id      uuid not null,
    constraint api_key_hashes_pkey primary key (secret_hash),
    constraint api_key_hashes_key_key unique (tenant, key_id)
);
comment on table app.api_key_hashes is 'global: the SHA-256 of every API key''s secret, unique across tenants (a reference table on Citus); kept by the api_keys_hash trigger, read by app.authenticate_key';
alter table app.api_key_hashes enable row level security;
insert into app.api_key_hashes (secret_hash, tenant, key_id) select k.secret_hash, k.tenant_id, k.id from app.api_keys k;

alter table app.tenants drop constraint tenants_slug_key;
alter table app.api_keys drop constraint api_keys_secret_hash_key;

-- The tenant's slug, claimed in app.tenant_slugs by the statement that writes the tenant.
create function app.tenants_slug() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if tg_op = 'INSERT' then
        insert into app.tenant_slugs (slug, tenant) values (new.slug, new.id);
    elsif tg_op = 'UPDATE' then
        update app.tenant_slugs s set slug = new.slug where s.tenant = old.id;
    else
        delete from app.tenant_slugs s where s.tenant = old.id;
    end if;
    return null;
end
$$;
create trigger tenants_slug after insert or delete or update of slug on app.tenants
    for each row execute function app.tenants_slug();

-- The key's hash, recorded in app.api_key_hashes by the statement that writes the key.
create function app.api_keys_hash() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if tg_op in ('UPDATE', 'DELETE') then
        delete from app.api_key_hashes h where h.tenant = old.tenant_id and h.key_id = old.id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        insert into app.api_key_hashes (secret_hash, tenant, key_id) values (new.secret_hash, new.tenant_id, new.id);
    end if;
    return null;
end
$$;
create trigger api_keys_hash after insert or delete or update of tenant_id, id, secret_hash on app.api_keys
    for each row execute function app.api_keys_hash();

-- replaces app.resolve_tenant (PL/pgSQL; a slug is found in app.tenant_slugs, then the tenant by id)
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

-- replaces app.authenticate_key (the key is found in app.api_key_hashes, then by (tenant_id, id))
create or replace function app.authenticate_key(p_hash bytea)
    returns table (tenant_id uuid, key_id uuid, scopes text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    h app.api_key_hashes;
begin
    select * into h from app.api_key_hashes x where x.secret_hash = p_hash;
    if not found then
        return;
    end if;
    return query
    update app.api_keys a set last_used_at = now()
    from app.tenants t
    where a.tenant_id = h.tenant and a.id = h.key_id and a.revoked_at is null
      and t.id = a.tenant_id and t.is_active
      and (a.last_used_at is null or a.last_used_at < now() - interval '1 minute')
    returning a.tenant_id, a.id, a.scopes;
    if not found then
        return query
        select a.tenant_id, a.id, a.scopes
        from app.api_keys a join app.tenants t on t.id = a.tenant_id
        where a.tenant_id = h.tenant and a.id = h.key_id and a.revoked_at is null and t.is_active;
    end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- 2. ON DELETE SET NULL on tenant keys → plain keys and a trigger on the referenced row

alter table app.conversations drop constraint conversations_assignee_id_fkey,
    add constraint conversations_assignee_id_fkey foreign key (tenant_id, assignee_id)
        references app.memberships (tenant_id, user_id);
alter table app.conversations drop constraint conversations_contact_id_fkey,
    add constraint conversations_contact_id_fkey foreign key (tenant_id, contact_id)
        references app.contacts (tenant_id, id);
alter table app.conversations drop constraint conversations_user_id_fkey,
    add constraint conversations_user_id_fkey foreign key (tenant_id, user_id)
        references app.memberships (tenant_id, user_id);
alter table app.usage_events drop constraint usage_events_assistant_id_fkey,
    add constraint usage_events_assistant_id_fkey foreign key (tenant_id, assistant_id)
        references app.assistants (tenant_id, id);
alter table app.usage_events drop constraint usage_events_conversation_id_fkey,
    add constraint usage_events_conversation_id_fkey foreign key (tenant_id, conversation_id)
        references app.conversations (tenant_id, id);
alter table app.usage_events drop constraint usage_events_user_id_fkey,
    add constraint usage_events_user_id_fkey foreign key (tenant_id, user_id)
        references app.memberships (tenant_id, user_id);

-- The owner updates usage events only to null a deleted row's reference (the append-only
-- trigger still refuses it, as it refused the SET NULL action before).
create policy usage_events_owner on app.usage_events for update to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());

-- A member leaves: their conversations and usage events keep no reference to them.
create function app.memberships_release() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if not exists (select 1 from app.tenants t where t.id = old.tenant_id) then
        return old; -- the tenant itself is being deleted: the referencing rows go with it
    end if;
    update app.conversations c set assignee_id = null
     where c.tenant_id = old.tenant_id and c.assignee_id = old.user_id;
    update app.conversations c set user_id = null
     where c.tenant_id = old.tenant_id and c.user_id = old.user_id;
    update app.usage_events u set user_id = null
     where u.tenant_id = old.tenant_id and u.user_id = old.user_id;
    return old;
end
$$;
create trigger memberships_release before delete on app.memberships
    for each row execute function app.memberships_release();

-- A contact is deleted: its conversations stay, without it.
create function app.contacts_release() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if not exists (select 1 from app.tenants t where t.id = old.tenant_id) then
        return old; -- the tenant itself is being deleted: the referencing rows go with it
    end if;
    update app.conversations c set contact_id = null
     where c.tenant_id = old.tenant_id and c.contact_id = old.id;
    return old;
end
$$;
create trigger contacts_release before delete on app.contacts
    for each row execute function app.contacts_release();

-- An assistant is deleted: its usage events stay, without it.
create function app.assistants_release() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if not exists (select 1 from app.tenants t where t.id = old.tenant_id) then
        return old; -- the tenant itself is being deleted: the referencing rows go with it
    end if;
    update app.usage_events u set assistant_id = null
     where u.tenant_id = old.tenant_id and u.assistant_id = old.id;
    return old;
end
$$;
create trigger assistants_release before delete on app.assistants
    for each row execute function app.assistants_release();

-- A conversation is deleted: its usage events stay, without it.
create function app.conversations_release() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if not exists (select 1 from app.tenants t where t.id = old.tenant_id) then
        return old; -- the tenant itself is being deleted: the referencing rows go with it
    end if;
    update app.usage_events u set conversation_id = null
     where u.tenant_id = old.tenant_id and u.conversation_id = old.id;
    return old;
end
$$;
create trigger conversations_release before delete on app.conversations
    for each row execute function app.conversations_release();

-- ---------------------------------------------------------------------------------------
-- 3 and 4. SQL functions with parameters that read tables → PL/pgSQL; no volatile
-- function in ON CONFLICT DO UPDATE SET.

-- replaces app.touch_user (PL/pgSQL; last_active_at comes from the inserted row)
create or replace function app.touch_user(p_id uuid, p_email text, p_name text) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    seen timestamptz := now();
begin
    insert into app.users as u (id, email, name, last_active_at) values (p_id, p_email, p_name, seen)
    on conflict (id) do update
        set email = coalesce(excluded.email, u.email),
            name = coalesce(excluded.name, u.name),
            last_active_at = excluded.last_active_at;
end
$$;

-- replaces app.flow_definition (PL/pgSQL)
create or replace function app.flow_definition(p_tenant uuid, p_key text,
                                               out initial_state text, out states text[],
                                               out terminal_states text[], out transitions jsonb)
    language plpgsql stable
    as $$
begin
    select f.initial_state, f.states, f.terminal_states, f.transitions
      into initial_state, states, terminal_states, transitions
      from app.flows f where f.tenant_id = p_tenant and f.key = p_key;
    if not found then
        select b.initial_state, b.states, b.terminal_states, b.transitions
          into initial_state, states, terminal_states, transitions
          from app.builtin_flows b where b.key = p_key;
    end if;
end
$$;

-- replaces app.price_at (PL/pgSQL)
create or replace function app.price_at(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                                        out input_usd_per_mtok numeric, out output_usd_per_mtok numeric,
                                        out cached_input_usd_per_mtok numeric)
    language plpgsql stable
    as $$
begin
    select t.input_usd_per_mtok, t.output_usd_per_mtok, t.cached_input_usd_per_mtok
      into input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok
      from app.tenant_model_prices t
     where t.tenant_id = p_tenant and t.provider = p_provider and t.model = p_model
       and t.effective_from <= p_at
     order by t.effective_from desc limit 1;
    if not found then
        select g.input_usd_per_mtok, g.output_usd_per_mtok, g.cached_input_usd_per_mtok
          into input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok
          from app.model_prices g
         where g.provider = p_provider and g.model = p_model and g.effective_from <= p_at
         order by g.effective_from desc limit 1;
    end if;
end
$$;

-- replaces app.add_usage (PL/pgSQL)
create or replace function app.add_usage(p_tenant uuid, p_at timestamptz, p_zone text, p_user uuid,
                                         p_assistant uuid, p_provider text, p_model text, p_request boolean,
                                         p_messages int, p_user_messages int, p_assistant_messages int,
                                         p_prompt bigint, p_completion bigint, p_cost numeric,
                                         p_unpriced boolean, p_latency_ms int) returns void
    language plpgsql volatile
    as $$
begin
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
           last_at = greatest(u.last_at, excluded.last_at);
end
$$;

-- replaces app.reserved_in (PL/pgSQL)
create or replace function app.reserved_in(p_tenant uuid, p_kind text, p_start timestamptz, p_expired_only boolean)
    returns numeric
    language plpgsql stable
    as $$
begin
    return (select coalesce(sum(case p_kind when 'minute' then 1 when 'day' then r.tokens else r.cost_usd end), 0)
              from app.limit_reservations r
             where r.tenant_id = p_tenant and r.status = 'active'
               and (not p_expired_only or r.expires_at <= now())
               and case p_kind when 'minute' then r.minute_window when 'day' then r.day_window
                               else r.month_window end = p_start);
end
$$;

-- replaces app.limit_status (PL/pgSQL)
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

-- replaces app.provider_secret (PL/pgSQL)
create or replace function app.provider_secret(p_tenant uuid, p_provider text)
    returns table (secret text, fingerprint text)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
begin
    return query
    select s.secret, s.fingerprint from app.provider_secrets s
    where s.tenant_id = p_tenant and s.provider = p_provider;
end
$$;

-- replaces app.retry_delivery (the queue row's due_at comes from the inserted row)
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

-- ---------------------------------------------------------------------------------------
-- 5. Reservations by their columns, not the table's row type.

drop function app.release_reservation(app.limit_reservations);
drop function app.take_reservation(uuid, uuid, uuid);
drop function app.reserve_limits(uuid, bigint, numeric, text, integer);

-- Give back what a reservation holds, where its windows are still the tenant's current
-- ones (a window that has passed is over).
-- replaces app.release_reservation (PL/pgSQL, and the reservation's columns instead of its row)
create function app.release_reservation(p_tenant uuid, p_minute_window timestamptz,
                                        p_day_window timestamptz, p_tokens bigint,
                                        p_month_window timestamptz, p_cost numeric) returns void
    language plpgsql volatile
    as $$
begin
    update app.limit_state x
       set minute_used = greatest(x.minute_used - (p_minute_window = x.minute_start)::int, 0),
           day_used = greatest(x.day_used - case when p_day_window = x.day_start then p_tokens else 0 end, 0),
           month_used = greatest(x.month_used - case when p_month_window = x.month_start then p_cost else 0 end, 0)
     where x.tenant_id = p_tenant;
end
$$;
revoke execute on function app.release_reservation(uuid, timestamptz, timestamptz, bigint, timestamptz, numeric) from public;
grant execute on function app.release_reservation(uuid, timestamptz, timestamptz, bigint, timestamptz, numeric) to frontdesk_operator;

-- Take the reservation a write names: lock it and mark it settled (or expired, when the
-- write comes after its expiry). Returns what it held while active (its holds are still
-- in the counters), or nulls when it had already expired and been released. Unknown →
-- 422, already settled or cancelled → 409.
-- replaces app.take_reservation (returns the holds, not the table's row type)
create function app.take_reservation(p_tenant uuid, p_id uuid, p_settled_by uuid,
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
revoke execute on function app.take_reservation(uuid, uuid, uuid) from public;

-- replaces app.charge_limits (it reads the holds app.take_reservation returns now)
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

-- Reserve an estimate against the current tenant's limits for p_ttl_seconds, or refuse
-- with FD429 and hold nothing. Any principal that may write. Returns the reservation's
-- columns.
-- replaces app.reserve_limits (returns the reservation's columns, not the table's row type)
create function app.reserve_limits(p_id uuid, p_tokens bigint, p_cost numeric, p_cost_source text,
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
revoke execute on function app.reserve_limits(uuid, bigint, numeric, text, integer) from public;
grant execute on function app.reserve_limits(uuid, bigint, numeric, text, integer) to frontdesk_user, frontdesk_service;

-- replaces app.cancel_reservation (it gives back by the reservation's columns)
create or replace function app.cancel_reservation(p_id uuid) returns text
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    r app.limit_reservations;
    -- Read once into variables: Citus refuses the helpers' inlined COALESCE of a stable
    -- function inside an UPDATE's WHERE.
    t uuid := app.current_tenant();
    staff boolean := app.is_tenant_staff();
    me uuid := app.current_user_id();
begin
    if not app.can_write() then
        raise exception 'cancelling needs a context that may write' using errcode = 'insufficient_privilege';
    end if;
    update app.limit_reservations x set status = 'cancelled'
     where x.tenant_id = t and x.id = p_id and x.status = 'active'
       and (staff or x.actor_user_id = me)
    returning x.* into r;
    if found then
        perform app.release_reservation(r.tenant_id, r.minute_window, r.day_window, r.tokens,
                                        r.month_window, r.cost_usd);
        return r.status;
    end if;
    select x.status into r.status from app.limit_reservations x
     where x.tenant_id = t and x.id = p_id and (staff or x.actor_user_id = me);
    return r.status;
end
$$;

-- ---------------------------------------------------------------------------------------
-- 6. Background work: find the tenants with due work (a plain read), then claim per
-- tenant (`… where tenant_id = p_tenant … skip locked`, one tenant's shard at a time).

drop function app.expire_reservations();

-- The tenants whose reservations the sweeper has work on: active ones past their expiry,
-- or finished ones older than a week.
create function app.tenants_to_sweep() returns table (tenant_id uuid)
    language plpgsql stable
    as $$
begin
    return query
    select distinct x.tenant_id from app.limit_reservations x
     where (x.status = 'active' and x.expires_at <= now())
        or (x.status <> 'active' and x.created_at < now() - interval '7 days');
end
$$;
revoke execute on function app.tenants_to_sweep() from public;
grant execute on function app.tenants_to_sweep() to frontdesk_operator;

-- The sweeper (as the operator), for one tenant: mark its expired reservations and give
-- back what they hold; delete its finished reservations after a week. Returns how many
-- expired.
-- replaces app.expire_reservations (per tenant)
create function app.expire_reservations(p_tenant uuid) returns integer
    language plpgsql volatile
    as $$
declare
    r record;
    expired integer := 0;
begin
    -- Every due row is locked and marked before the tenant's state row is updated.
    for r in
        with due as (
            select x.tenant_id, x.id from app.limit_reservations x
             where x.tenant_id = p_tenant and x.status = 'active' and x.expires_at <= now()
             order by x.expires_at limit 1000 for update skip locked)
        update app.limit_reservations x set status = 'expired' from due
         where x.tenant_id = due.tenant_id and x.id = due.id
        returning x.minute_window, x.day_window, x.tokens, x.month_window, x.cost_usd
    loop
        perform app.release_reservation(p_tenant, r.minute_window, r.day_window, r.tokens,
                                        r.month_window, r.cost_usd);
        expired := expired + 1;
    end loop;
    delete from app.limit_reservations x
     where x.tenant_id = p_tenant and x.status <> 'active' and x.created_at < now() - interval '7 days';
    return expired;
end
$$;
revoke execute on function app.expire_reservations(uuid) from public;
grant execute on function app.expire_reservations(uuid) to frontdesk_operator;

drop function app.claim_deliveries(uuid, integer, interval);

-- The tenants with a delivery due now, on an enabled endpoint, not leased: the longest
-- waiting first, at most p_limit.
create function app.tenants_with_due_deliveries(p_limit integer) returns table (tenant_id uuid)
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
revoke execute on function app.tenants_with_due_deliveries(integer) from public;
grant execute on function app.tenants_with_due_deliveries(integer) to frontdesk_operator;

-- Claim up to p_limit deliveries of one tenant, at most one per endpoint and only for
-- endpoints with none in flight, each leased to p_worker for p_lease. Returns what the
-- worker needs to send them: the event, the endpoint's URL and its secrets (the previous
-- one while its grace lasts).
-- replaces app.claim_deliveries (per tenant)
create function app.claim_deliveries(p_tenant uuid, p_worker uuid, p_limit integer, p_lease interval)
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
revoke execute on function app.claim_deliveries(uuid, uuid, integer, interval) from public;
grant execute on function app.claim_deliveries(uuid, uuid, integer, interval) to frontdesk_operator;
