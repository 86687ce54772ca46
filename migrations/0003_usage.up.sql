-- Usage: the model price catalog (global, with per-tenant overrides and history), the
-- daily rollups, limits with reservations, and usage events. Each is kept by the write
-- triggers in the same statement as each message or usage event.
--
--   * A message with tokens and no cost_usd is costed from the catalog at its time; a
--     provided cost always wins; tokens of a model without a price cost 0 and are marked
--     'unpriced' (messages.cost_source), so they can be found and re-priced.
--   * app.usage_daily holds one row per (tenant, day in the tenant's time zone, user,
--     assistant, provider, model); NULLS NOT DISTINCT, so a null user or assistant never
--     makes a second row. total_tokens is generated: prompt + completion, always.
--   * Limits: rate_limit_per_minute (message and usage writes), daily_token_limit (tokens
--     per day in the tenant's time zone), monthly_budget_usd (cost per calendar month,
--     same zone), charged in app.limit_state, one row per tenant. A write that would pass
--     a limit raises SQLSTATE FD429, which rolls back its whole transaction.
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
--
-- Lock order, everywhere: a reservation row before the tenant's state row. So no two
-- writers can deadlock.

-- ---------------------------------------------------------------------------------------
-- Prices, in USD per million tokens. A price applies from effective_from until the next
-- row of the same provider and model; rows are never changed, only added (the history).

create table app.model_prices (
    provider                  text not null,
    model                     text not null,
    effective_from            timestamptz not null,
    input_usd_per_mtok        numeric(20, 10) not null,
    output_usd_per_mtok       numeric(20, 10) not null,
    cached_input_usd_per_mtok numeric(20, 10),
    source                    text,
    created_at                timestamptz not null default now(),
    constraint model_prices_pkey primary key (provider, model, effective_from),
    constraint model_prices_provider_check check (provider ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    constraint model_prices_model_check check (length(model) between 1 and 200),
    constraint model_prices_price_check check (input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0
                                               and cached_input_usd_per_mtok >= 0)
);
comment on table app.model_prices is 'global catalog: public list prices; written by migrations and the operator';
grant select on app.model_prices to frontdesk_user, frontdesk_service;
grant select, insert, delete on app.model_prices to frontdesk_operator;

-- Public list prices (standard tier, text tokens, prompts within each model's base context
-- tier), as the providers published them; effective from 2025-01-01 for this catalog.
insert into app.model_prices (provider, model, effective_from, input_usd_per_mtok, output_usd_per_mtok,
                              cached_input_usd_per_mtok, source) values
('openai', 'gpt-4o',            '2025-01-01', 2.50,  10.00, 1.25,  'openai.com/api/pricing'),
('openai', 'gpt-4o-mini',       '2025-01-01', 0.15,  0.60,  0.075, 'openai.com/api/pricing'),
('openai', 'gpt-4.1',           '2025-01-01', 2.00,  8.00,  0.50,  'openai.com/api/pricing'),
('openai', 'gpt-4.1-mini',      '2025-01-01', 0.40,  1.60,  0.10,  'openai.com/api/pricing'),
('openai', 'gpt-4.1-nano',      '2025-01-01', 0.10,  0.40,  0.025, 'openai.com/api/pricing'),
('openai', 'o3',                '2025-01-01', 2.00,  8.00,  0.50,  'openai.com/api/pricing'),
('openai', 'o4-mini',           '2025-01-01', 1.10,  4.40,  0.275, 'openai.com/api/pricing'),
('openai', 'gpt-3.5-turbo',     '2025-01-01', 0.50,  1.50,  null,  'openai.com/api/pricing'),
('openai', 'text-embedding-3-small', '2025-01-01', 0.02, 0, null,  'openai.com/api/pricing'),
('openai', 'text-embedding-3-large', '2025-01-01', 0.13, 0, null,  'openai.com/api/pricing'),
('anthropic', 'claude-opus-4',     '2025-01-01', 15.00, 75.00, 1.50, 'anthropic.com/pricing'),
('anthropic', 'claude-sonnet-4',   '2025-01-01', 3.00,  15.00, 0.30, 'anthropic.com/pricing'),
('anthropic', 'claude-3-7-sonnet', '2025-01-01', 3.00,  15.00, 0.30, 'anthropic.com/pricing'),
('anthropic', 'claude-3-5-sonnet', '2025-01-01', 3.00,  15.00, 0.30, 'anthropic.com/pricing'),
('anthropic', 'claude-3-5-haiku',  '2025-01-01', 0.80,  4.00,  0.08, 'anthropic.com/pricing'),
('anthropic', 'claude-3-haiku',    '2025-01-01', 0.25,  1.25,  0.03, 'anthropic.com/pricing'),
('anthropic', 'claude-3-opus',     '2025-01-01', 15.00, 75.00, 1.50, 'anthropic.com/pricing'),
('google', 'gemini-2.5-pro',        '2025-01-01', 1.25,  10.00, 0.31,   'ai.google.dev/pricing'),
('google', 'gemini-2.5-flash',      '2025-01-01', 0.30,  2.50,  0.075,  'ai.google.dev/pricing'),
('google', 'gemini-2.0-flash',      '2025-01-01', 0.10,  0.40,  0.025,  'ai.google.dev/pricing'),
('google', 'gemini-2.0-flash-lite', '2025-01-01', 0.075, 0.30,  null,   'ai.google.dev/pricing'),
('google', 'gemini-1.5-pro',        '2025-01-01', 1.25,  5.00,  0.3125, 'ai.google.dev/pricing'),
('google', 'gemini-1.5-flash',      '2025-01-01', 0.075, 0.30,  0.01875, 'ai.google.dev/pricing'),
('mistral', 'mistral-large-latest',  '2025-01-01', 2.00, 6.00, null, 'mistral.ai/pricing'),
('mistral', 'mistral-medium-latest', '2025-01-01', 0.40, 2.00, null, 'mistral.ai/pricing'),
('mistral', 'mistral-small-latest',  '2025-01-01', 0.10, 0.30, null, 'mistral.ai/pricing'),
('mistral', 'codestral-latest',      '2025-01-01', 0.30, 0.90, null, 'mistral.ai/pricing'),
('mistral', 'open-mistral-nemo',     '2025-01-01', 0.15, 0.15, null, 'mistral.ai/pricing');

-- A tenant's own prices (negotiated rates, self-hosted models) take precedence.
create table app.tenant_model_prices (
    tenant_id                 uuid not null references app.tenants (id) on delete cascade,
    provider                  text not null,
    model                     text not null,
    effective_from            timestamptz not null,
    input_usd_per_mtok        numeric(20, 10) not null,
    output_usd_per_mtok       numeric(20, 10) not null,
    cached_input_usd_per_mtok numeric(20, 10),
    created_by                uuid,
    created_at                timestamptz not null default now(),
    constraint tenant_model_prices_pkey primary key (tenant_id, provider, model, effective_from),
    constraint tenant_model_prices_provider_check check (provider ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    constraint tenant_model_prices_model_check check (length(model) between 1 and 200),
    constraint tenant_model_prices_price_check check (input_usd_per_mtok >= 0 and output_usd_per_mtok >= 0
                                                      and cached_input_usd_per_mtok >= 0)
);

alter table app.tenant_model_prices enable row level security;
alter table app.tenant_model_prices force row level security;
create policy tenant_model_prices_select on app.tenant_model_prices for select
    to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy tenant_model_prices_insert on app.tenant_model_prices for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
-- The message trigger (SECURITY DEFINER) looks prices up as the owner.
create policy tenant_model_prices_owner on app.tenant_model_prices for select to frontdesk_owner
    using (tenant_id = app.current_tenant());
grant select on app.tenant_model_prices to frontdesk_user, frontdesk_service;
grant insert on app.tenant_model_prices to frontdesk_user;
grant select, insert, delete on app.tenant_model_prices to frontdesk_operator;

-- The price of a model at a time: the tenant's own, else the catalog's; no row = unpriced.
create function app.price_at(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
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
grant execute on function app.price_at(uuid, text, text, timestamptz)
    to frontdesk_user, frontdesk_service, frontdesk_operator;

-- The cost of tokens from the price catalog at a time: 'catalog', or 'unpriced' and 0 when
-- the model (or its price) is unknown. Used by the message and usage event triggers.
create function app.token_cost(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                               p_prompt integer, p_completion integer,
                               out cost_usd numeric, out cost_source text)
    language sql stable
    as $$
    select coalesce(round((coalesce(p_prompt, 0) * p.input_usd_per_mtok
                           + coalesce(p_completion, 0) * p.output_usd_per_mtok) / 1000000, 10), 0),
           case when p.input_usd_per_mtok is null then 'unpriced' else 'catalog' end
    from (select 1) one
    left join app.price_at(p_tenant, coalesce(p_provider, ''), p_model, p_at) p on true
$$;


-- ---------------------------------------------------------------------------------------
-- Daily rollups.

create table app.usage_daily (
    tenant_id          uuid not null references app.tenants (id) on delete cascade,
    id                 uuid not null,
    day                date not null,
    user_id            uuid,
    assistant_id       uuid,
    provider           text,
    model              text,
    request_count      bigint not null default 0,
    message_count      bigint not null default 0,
    user_messages      bigint not null default 0,
    assistant_messages bigint not null default 0,
    prompt_tokens      bigint not null default 0,
    completion_tokens  bigint not null default 0,
    total_tokens       bigint generated always as (prompt_tokens + completion_tokens) stored,
    cost_usd           numeric(24, 10) not null default 0,
    unpriced_count     bigint not null default 0,
    latency_ms_sum     bigint not null default 0,
    latency_count      bigint not null default 0,
    first_at           timestamptz not null,
    last_at            timestamptz not null,
    constraint usage_daily_pkey primary key (tenant_id, id),
    constraint usage_daily_key unique nulls not distinct (tenant_id, day, user_id, assistant_id, provider, model),
    constraint usage_daily_counts_check check (request_count >= 0 and message_count >= 0 and prompt_tokens >= 0
                                               and completion_tokens >= 0 and cost_usd >= 0)
);
comment on table app.usage_daily is 'per tenant, day (tenant time zone), user, assistant, provider, model: kept in the same statement as each message';
comment on column app.usage_daily.request_count is 'LLM calls: messages with tokens or a cost';
comment on column app.usage_daily.user_id is 'the conversation''s owner (null for contacts'' conversations)';

alter table app.usage_daily enable row level security;
alter table app.usage_daily force row level security;
create policy usage_daily_select on app.usage_daily for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy usage_daily_owner on app.usage_daily for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.usage_daily to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.usage_daily to frontdesk_operator;

-- Add one fact (a message or a usage event) to its rollup row. Called by the SECURITY
-- DEFINER triggers of messages and usage events, as the owner (usage_daily_owner).
create function app.add_usage(p_tenant uuid, p_at timestamptz, p_zone text, p_user uuid,
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
revoke execute on function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int,
                                         int, int, bigint, bigint, numeric, boolean, int) from public;

-- ---------------------------------------------------------------------------------------
-- Limits.

-- The first time each limit is hit in its window (so usage.limit_reached is sent once).
create table app.limit_hits (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    limit_name   text not null,
    window_start timestamptz not null,
    created_at   timestamptz not null default now(),
    constraint limit_hits_pkey primary key (tenant_id, limit_name, window_start),
    constraint limit_hits_limit_name_check
        check (limit_name in ('rate_limit_per_minute', 'daily_token_limit', 'monthly_budget_usd'))
);
alter table app.limit_hits enable row level security;
alter table app.limit_hits force row level security;
create policy limit_hits_select on app.limit_hits for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy limit_hits_owner on app.limit_hits for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.limit_hits to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.limit_hits to frontdesk_operator;

-- Note that a limit was hit in its window, after the refused write rolled back (the
-- server calls it in a transaction of its own); emits usage.limit_reached the first time.
create function app.note_limit_reached(p_limit text, p_window timestamptz, p_detail jsonb) returns boolean
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.current_tenant();
begin
    insert into app.limit_hits (tenant_id, limit_name, window_start) values (t, p_limit, p_window)
    on conflict do nothing;
    if not found then
        return false;
    end if;
    perform app.emit_event(t, 'usage.limit_reached', null, p_detail || jsonb_build_object('limit_name', p_limit));
    return true;
end
$$;
revoke execute on function app.note_limit_reached(text, timestamptz, jsonb) from public;
grant execute on function app.note_limit_reached(text, timestamptz, jsonb) to frontdesk_user, frontdesk_service, frontdesk_operator;

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
-- The tenant's limit state: its current windows and what each has used, in one row, so
-- a write charges its limits with ONE update (measured: one counter row per limit and
-- window cost a POST about 30 % of its throughput). A window that has passed restarts at
-- zero when the next write comes. The row lock makes a tenant's writes take turns,
-- across any number of servers.

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
-- The message write path gains its usage jobs (see 0002 for the order):
--   messages_10_cost    price the tokens from the catalog
--   messages_30_limits  charge the tenant's limits, settle the reservation it names
--   messages_40_usage   add the message to its daily rollup row

-- A message with tokens and no cost is costed from the catalog at its time; a provided
-- cost wins. Providers are compared in lower case.
create function app.messages_cost() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
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
    return new;
end
$$;
create trigger messages_10_cost before insert on app.messages
    for each row execute function app.messages_cost();

-- Charge a write (a message or a usage event: both have these columns) against the
-- tenant's limits and settle the reservation it names; FD429 past a limit.
create function app.charge_write() returns trigger
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
create trigger messages_30_limits before insert on app.messages
    for each row execute function app.charge_write();

-- Add the message to its rollup row: the day in the tenant's zone, the conversation's
-- owner and assistant.
create function app.messages_add_usage() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    assistant uuid;
    zone text;
begin
    select c.assistant_id, t.timezone into assistant, zone
      from app.conversations c join app.tenants t on t.id = c.tenant_id
     where c.tenant_id = new.tenant_id and c.id = new.conversation_id;
    perform app.add_usage(new.tenant_id, new.created_at, zone, new.owner_user_id, assistant,
                          new.provider, new.model, new.cost_source is not null, 1,
                          (new.role = 'user')::int, (new.role = 'assistant')::int,
                          new.prompt_tokens, new.completion_tokens, new.cost_usd,
                          new.cost_source = 'unpriced', new.latency_ms);
    return new;
end
$$;
create trigger messages_40_usage before insert on app.messages
    for each row execute function app.messages_add_usage();

-- ---------------------------------------------------------------------------------------
-- Usage events: usage not tied to a message (embeddings, voice minutes, tool calls), by
-- tokens (costed like messages) or by unit and quantity with a unit price. Append-only;
-- each is added to its rollup by its insert trigger, in the same statement.

create table app.usage_events (
    tenant_id       uuid not null references app.tenants (id) on delete cascade,
    id              uuid not null,
    user_id         uuid,
    assistant_id    uuid,
    conversation_id uuid,
    provider        text,
    model           text,
    prompt_tokens   integer,
    completion_tokens integer,
    unit            text,
    quantity        numeric(20, 6),
    unit_price_usd  numeric(20, 10),
    cost_usd        numeric(20, 10),
    cost_source     text,
    metadata        jsonb not null default '{}',
    actor_user_id   uuid,
    actor_key_id    uuid,
    created_at      timestamptz not null default now(),
    reservation_id  uuid,
    constraint usage_events_pkey primary key (tenant_id, id),
    constraint usage_events_user_id_fkey foreign key (tenant_id, user_id)
        references app.memberships (tenant_id, user_id) on delete set null (user_id),
    constraint usage_events_assistant_id_fkey foreign key (tenant_id, assistant_id)
        references app.assistants (tenant_id, id) on delete set null (assistant_id),
    constraint usage_events_conversation_id_fkey foreign key (tenant_id, conversation_id)
        references app.conversations (tenant_id, id) on delete set null (conversation_id),
    constraint usage_events_what_check check ((prompt_tokens is not null or completion_tokens is not null)
                                             <> (unit is not null)),
    constraint usage_events_tokens_check check (prompt_tokens >= 0 and completion_tokens >= 0),
    constraint usage_events_unit_check check (unit ~ '^[a-z][a-z0-9_]{0,31}$'),
    constraint usage_events_quantity_check check ((unit is null) = (quantity is null) and quantity >= 0),
    constraint usage_events_unit_price_check check (unit_price_usd >= 0 and (unit_price_usd is null or unit is not null)),
    constraint usage_events_cost_check check (cost_usd >= 0),
    constraint usage_events_cost_source_check check (cost_source in ('provided', 'catalog', 'unpriced')),
    constraint usage_events_provider_check check (provider ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    constraint usage_events_model_check check (length(model) between 1 and 200),
    constraint usage_events_metadata_check check (jsonb_typeof(metadata) = 'object')
);
comment on table app.usage_events is 'usage not tied to a message; append-only';
comment on column app.usage_events.reservation_id is 'the limit reservation this usage settled';
create index usage_events_user_idx on app.usage_events (tenant_id, user_id) where user_id is not null;
create index usage_events_assistant_idx on app.usage_events (tenant_id, assistant_id) where assistant_id is not null;
create index usage_events_conversation_idx on app.usage_events (tenant_id, conversation_id) where conversation_id is not null;

-- The usage event write path, in name order like the message's:
--   usage_events_05_actor   who recorded it
--   usage_events_10_cost    its cost: given, unit × unit price, or tokens from the catalog
--   usage_events_30_limits  charge the tenant's limits (app.charge_write, as for messages)
--   usage_events_40_usage   add it to its daily rollup row
create function app.usage_events_actor() returns trigger
    language plpgsql
    as $$
begin
    new.actor_user_id := app.current_user_id();
    new.actor_key_id := app.current_key_id();
    return new;
end
$$;
create trigger usage_events_05_actor before insert on app.usage_events
    for each row execute function app.usage_events_actor();

create function app.usage_events_cost() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    new.provider := lower(new.provider);
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
    return new;
end
$$;
create trigger usage_events_10_cost before insert on app.usage_events
    for each row execute function app.usage_events_cost();
create trigger usage_events_30_limits before insert on app.usage_events
    for each row execute function app.charge_write();

create function app.usage_events_add_usage() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    perform app.add_usage(new.tenant_id, new.created_at,
                          (select t.timezone from app.tenants t where t.id = new.tenant_id),
                          new.user_id, new.assistant_id, new.provider, new.model, true, 0, 0, 0,
                          new.prompt_tokens, new.completion_tokens, new.cost_usd,
                          new.cost_source = 'unpriced', null);
    return new;
end
$$;
create trigger usage_events_40_usage before insert on app.usage_events
    for each row execute function app.usage_events_add_usage();

create trigger usage_events_append_only before update or delete on app.usage_events
    for each row execute function app.refuse_change();

alter table app.usage_events enable row level security;
alter table app.usage_events force row level security;
create policy usage_events_select on app.usage_events for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy usage_events_insert on app.usage_events for insert to frontdesk_user, frontdesk_service
    with check (tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write());
grant select, insert on app.usage_events to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.usage_events to frontdesk_operator;
