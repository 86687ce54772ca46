-- 0012_model_pricing: every model priced, cached and reasoning tokens, re-costing a past
-- window after a back-dated price, and the rollup row of each fact.
--
-- 1. Matching a model to its price. Providers answer with dated or versioned model names
--    (`claude-3-5-haiku-20241022`, `gpt-4o-mini-2024-07-18`) that the price lists do not
--    hold. A model is priced, at the fact's time, by
--      a. its exact name: the tenant's own price, else the catalog's (cost_source `catalog`);
--      b. else the longest name it extends with a date or version suffix, among the
--         tenant's prices and the catalog's, the tenant's first at equal length
--         (cost_source `catalog_prefix`);
--      c. else nothing: costed 0, cost_source `unpriced`.
--    The suffix is one or more segments, each `-` or `@` followed by a date (`20241022`,
--    `2024-07-18`, `0125`), a three-digit version (`001`) or `v` and a version (`v2`,
--    `v2:0`, `v1.5`); anything else (`-mini`, `-5`, `-latest`, `-preview`) names another
--    model. So `gpt-4o-mini-2024-07-18` is priced as `gpt-4o-mini`, never as `gpt-4o`, and
--    `claude-sonnet-4-5-20250929` is not priced as `claude-sonnet-4`. The name the cost came
--    from is kept on the fact (`priced_model`).
--
-- 2. Cached and reasoning tokens (messages and usage events), as providers report them:
--    `cached_tokens` are the part of the prompt tokens read from the provider's prompt
--    cache, priced at the cached-input price (the price's own, else the input price);
--    `reasoning_tokens` are the part of the completion tokens spent reasoning, priced as
--    completion tokens. Both are parts of the totals, never added to them.
--
-- 3. The rollup row of each fact (`rollup_id`, set by the usage trigger, as
--    feedback.rollup_id is), so that a correction reaches exactly the row the fact was
--    added to, whatever changed since (the tenant's time zone, a member who left).
--    app.add_usage returns that row.
--
-- 4. Re-costing (app.recost_usage, POST …/prices/recost): after a price was added with an
--    effective_from in the past, the catalog-costed and unpriced messages and usage events
--    of a window are priced again at their own times; each changed fact's difference is
--    added to its conversation's total, its rollup row (cost and unpriced count) and,
--    when the fact is in the tenant's current month window of app.limit_state and the
--    tenant has a monthly budget, to the month's cost — in one transaction, as
--    differences, so that a message written meanwhile is never lost from a total. Costs
--    provided by clients are never changed. The messages and usage events stay
--    append-only: the owner (only in app.recost_usage) may change their cost columns and
--    nothing else.
--
--    Locks, in the order the write path takes them (so recost and writes cannot
--    deadlock): the facts (FOR UPDATE, by id), then their conversations (by id), then the
--    tenant's limit state, then the rollup rows (by id).

-- ---------------------------------------------------------------------------------------
-- Columns.

alter table app.messages add column cached_tokens integer;
alter table app.messages add column reasoning_tokens integer;
alter table app.messages add column priced_model text;
alter table app.messages add column rollup_id uuid;
alter table app.messages add constraint messages_cached_tokens_check
    check (cached_tokens >= 0 and cached_tokens <= coalesce(prompt_tokens, 0));
alter table app.messages add constraint messages_reasoning_tokens_check
    check (reasoning_tokens >= 0 and reasoning_tokens <= coalesce(completion_tokens, 0));
alter table app.messages drop constraint messages_cost_source_check;
alter table app.messages add constraint messages_cost_source_check
    check (cost_source in ('provided', 'catalog', 'catalog_prefix', 'unpriced'));
comment on column app.messages.cost_source is 'provided by the client, catalog (the exact model''s price), catalog_prefix (the price of the longest name the model extends with a date or version suffix), or unpriced (tokens of a model without a price: costed 0)';
comment on column app.messages.cached_tokens is 'the part of prompt_tokens read from the provider''s prompt cache (priced at the cached-input price)';
comment on column app.messages.reasoning_tokens is 'the part of completion_tokens spent reasoning (priced as completion tokens)';
comment on column app.messages.priced_model is 'the price list''s model name the cost was computed from (catalog and catalog_prefix costs)';
comment on column app.messages.rollup_id is 'the usage_daily row this message counts in (set by the insert trigger)';

alter table app.usage_events add column cached_tokens integer;
alter table app.usage_events add column reasoning_tokens integer;
alter table app.usage_events add column priced_model text;
alter table app.usage_events add column rollup_id uuid;
alter table app.usage_events add constraint usage_events_cached_tokens_check
    check (cached_tokens >= 0 and cached_tokens <= coalesce(prompt_tokens, 0));
alter table app.usage_events add constraint usage_events_reasoning_tokens_check
    check (reasoning_tokens >= 0 and reasoning_tokens <= coalesce(completion_tokens, 0));
alter table app.usage_events drop constraint usage_events_cost_source_check;
alter table app.usage_events add constraint usage_events_cost_source_check
    check (cost_source in ('provided', 'catalog', 'catalog_prefix', 'unpriced'));
comment on column app.usage_events.cached_tokens is 'the part of prompt_tokens read from the provider''s prompt cache (priced at the cached-input price)';
comment on column app.usage_events.reasoning_tokens is 'the part of completion_tokens spent reasoning (priced as completion tokens)';
comment on column app.usage_events.priced_model is 'the price list''s model name the cost was computed from (catalog and catalog_prefix costs)';
comment on column app.usage_events.rollup_id is 'the usage_daily row this event counts in (set by the insert trigger)';

-- A reservation's estimate is priced the same way.
alter table app.limit_reservations drop constraint limit_reservations_cost_source_check;
alter table app.limit_reservations add constraint limit_reservations_cost_source_check
    check (cost_source in ('provided', 'catalog', 'catalog_prefix', 'unpriced'));

-- ---------------------------------------------------------------------------------------
-- Matching and costing.

-- Whether p_model is p_base followed by a date or version suffix (see 1. above).
create function app.model_extends(p_model text, p_base text) returns boolean
    language sql immutable parallel safe
    as $$
    select length(p_model) > length(p_base) and left(p_model, length(p_base)) = p_base
       and substr(p_model, length(p_base) + 1)
           ~ '^([-@]([0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}|[0-9]{3}|v[0-9]+([.:][0-9]+)*))+$'
$$;

-- The price of a model at a time, and the name it was found under: the exact name (the
-- tenant's price, else the catalog's), else the longest name the model extends (the
-- tenant's first at equal length). No row found: every output is null.
create function app.price_match(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                                out priced_model text, out exact boolean,
                                out input_usd_per_mtok numeric, out output_usd_per_mtok numeric,
                                out cached_input_usd_per_mtok numeric)
    language plpgsql stable
    as $$
declare
    tenant_base text;
    catalog_base text;
begin
    if p_model is null then
        return;
    end if;
    -- (app.price_at: the tenant's price, else the catalog's; a price's input is never null.)
    select p.input_usd_per_mtok, p.output_usd_per_mtok, p.cached_input_usd_per_mtok
      into input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok
      from app.price_at(p_tenant, p_provider, p_model, p_at) p;
    if input_usd_per_mtok is not null then
        priced_model := p_model;
        exact := true;
        return;
    end if;
    select t.model into tenant_base
      from app.tenant_model_prices t
     where t.tenant_id = p_tenant and t.provider = p_provider and t.effective_from <= p_at
       and app.model_extends(p_model, t.model)
     order by length(t.model) desc limit 1;
    select g.model into catalog_base
      from app.model_prices g
     where g.provider = p_provider and g.effective_from <= p_at and app.model_extends(p_model, g.model)
     order by length(g.model) desc limit 1;
    -- The longer name, the tenant's at equal length. (A tenant price under the catalog's
    -- name would have made it the tenant's name, so price_at finds the same price.)
    if tenant_base is not null and length(tenant_base) >= coalesce(length(catalog_base), 0) then
        priced_model := tenant_base;
    elsif catalog_base is not null then
        priced_model := catalog_base;
    else
        return;
    end if;
    select p.input_usd_per_mtok, p.output_usd_per_mtok, p.cached_input_usd_per_mtok
      into input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok
      from app.price_at(p_tenant, p_provider, priced_model, p_at) p;
    exact := false;
end
$$;

-- The cost of tokens at a time: catalog or catalog_prefix with the name priced, or
-- unpriced and 0. Cached tokens (a part of the prompt tokens) at the cached-input price.
create function app.tokens_cost(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                                p_prompt integer, p_completion integer, p_cached integer,
                                out cost_usd numeric, out cost_source text, out priced_model text)
    language plpgsql stable
    as $$
declare
    p record;
    cached bigint := least(coalesce(p_cached, 0), coalesce(p_prompt, 0));
begin
    select * into p from app.price_match(p_tenant, coalesce(p_provider, ''), p_model, p_at);
    if p.input_usd_per_mtok is null then
        cost_usd := 0;
        cost_source := 'unpriced';
        return;
    end if;
    cost_usd := round(((coalesce(p_prompt, 0) - cached) * p.input_usd_per_mtok
                       + cached * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
                       + coalesce(p_completion, 0) * p.output_usd_per_mtok) / 1000000, 10);
    cost_source := case when p.exact then 'catalog' else 'catalog_prefix' end;
    priced_model := p.priced_model;
end
$$;

-- replaces app.token_cost (prices like app.tokens_cost, without cached tokens: the limit check's estimate)
create or replace function app.token_cost(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
                                          p_prompt integer, p_completion integer,
                                          out cost_usd numeric, out cost_source text)
    language plpgsql stable
    as $$
begin
    select c.cost_usd, c.cost_source into cost_usd, cost_source
      from app.tokens_cost(p_tenant, p_provider, p_model, p_at, p_prompt, p_completion, null) c;
end
$$;

-- replaces app.messages_cost (the longest name the model extends, cached tokens, the name priced)
create or replace function app.messages_cost() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    new.provider := lower(new.provider);
    new.priced_model := null;
    if new.cost_usd is not null then
        new.cost_source := 'provided';
    elsif coalesce(new.prompt_tokens, new.completion_tokens) is not null then
        select c.cost_usd, c.cost_source, c.priced_model into new.cost_usd, new.cost_source, new.priced_model
          from app.tokens_cost(new.tenant_id, new.provider, new.model, new.created_at,
                               new.prompt_tokens, new.completion_tokens, new.cached_tokens) c;
    else
        new.cost_source := null;
    end if;
    return new;
end
$$;

-- replaces app.usage_events_cost (the longest name the model extends, cached tokens, the name priced)
create or replace function app.usage_events_cost() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    new.provider := lower(new.provider);
    new.priced_model := null;
    if new.cost_usd is not null then
        new.cost_source := 'provided';
    elsif new.unit is not null then
        new.cost_usd := case when new.unit_price_usd is null then 0
                             else round(new.quantity * new.unit_price_usd, 10) end;
        new.cost_source := case when new.unit_price_usd is null then 'unpriced' else 'provided' end;
    else
        select c.cost_usd, c.cost_source, c.priced_model into new.cost_usd, new.cost_source, new.priced_model
          from app.tokens_cost(new.tenant_id, new.provider, new.model, new.created_at,
                               new.prompt_tokens, new.completion_tokens, new.cached_tokens) c;
    end if;
    return new;
end
$$;

-- ---------------------------------------------------------------------------------------
-- The rollup row of each fact.

-- replaces app.add_usage (returns the rollup row it added to)
drop function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int, int, int,
                            bigint, bigint, numeric, boolean, int);
create function app.add_usage(p_tenant uuid, p_at timestamptz, p_zone text, p_user uuid,
                              p_assistant uuid, p_provider text, p_model text, p_request boolean,
                              p_messages int, p_user_messages int, p_assistant_messages int,
                              p_prompt bigint, p_completion bigint, p_cost numeric,
                              p_unpriced boolean, p_latency_ms int) returns uuid
    language plpgsql volatile
    as $$
declare
    row_id uuid;
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
           last_at = greatest(u.last_at, excluded.last_at)
    returning u.id into row_id;
    return row_id;
end
$$;
revoke execute on function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int,
                                         int, int, bigint, bigint, numeric, boolean, int) from public;

-- replaces app.messages_add_usage (keeps the rollup row on the message)
create or replace function app.messages_add_usage() returns trigger
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
    new.rollup_id := app.add_usage(new.tenant_id, new.created_at, zone, new.owner_user_id, assistant,
                                   new.provider, new.model, new.cost_source is not null, 1,
                                   (new.role = 'user')::int, (new.role = 'assistant')::int,
                                   new.prompt_tokens, new.completion_tokens, new.cost_usd,
                                   new.cost_source = 'unpriced', new.latency_ms);
    return new;
end
$$;

-- replaces app.usage_events_add_usage (keeps the rollup row on the event)
create or replace function app.usage_events_add_usage() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    zone text;
begin
    select t.timezone into zone from app.tenants t where t.id = new.tenant_id;
    new.rollup_id := app.add_usage(new.tenant_id, new.created_at, zone,
                                   new.user_id, new.assistant_id, new.provider, new.model, true, 0, 0, 0,
                                   new.prompt_tokens, new.completion_tokens, new.cost_usd,
                                   new.cost_source = 'unpriced', null);
    return new;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Append-only, but for the recost: the owner may change a fact's cost columns only.

-- replaces app.messages_append_only (the owner may change the cost columns, as app.recost_usage does)
create or replace function app.messages_append_only() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'DELETE' then
        if pg_trigger_depth() > 1 then
            return old;
        end if;
    elsif old.redacted_at is null and new.redacted_at is not null and new.redacted_by is not null
          -- (a BEFORE trigger sees generated columns as null in NEW, so total_tokens is left out)
          and to_jsonb(new) - array['content', 'redacted_at', 'redacted_by', 'total_tokens']
              = to_jsonb(old) - array['content', 'redacted_at', 'redacted_by', 'total_tokens'] then
        return new;
    elsif current_user = 'frontdesk_owner'
          and to_jsonb(new) - array['cost_usd', 'cost_source', 'priced_model', 'total_tokens']
              = to_jsonb(old) - array['cost_usd', 'cost_source', 'priced_model', 'total_tokens'] then
        return new;
    end if;
    raise exception 'messages are append-only; an admin may redact one'
        using errcode = 'insufficient_privilege', hint = 'append-only';
end
$$;

-- The owner may also null a reference to a member, assistant or conversation that is
-- being deleted (app.memberships_release and its kin, 0007): the row policy kept those
-- updates from seeing any usage event until the owner could read them (below).
create function app.usage_events_append_only() returns trigger
    language plpgsql
    as $$
begin
    if tg_op = 'DELETE' and pg_trigger_depth() > 1 then
        return old;
    end if;
    if tg_op = 'UPDATE' and current_user = 'frontdesk_owner'
       and to_jsonb(new) - array['cost_usd', 'cost_source', 'priced_model']
           = to_jsonb(old) - array['cost_usd', 'cost_source', 'priced_model'] then
        return new;
    end if;
    if tg_op = 'UPDATE' and current_user = 'frontdesk_owner' and pg_trigger_depth() > 1
       and (new.user_id is null or new.user_id = old.user_id)
       and (new.assistant_id is null or new.assistant_id = old.assistant_id)
       and (new.conversation_id is null or new.conversation_id = old.conversation_id)
       and to_jsonb(new) - array['user_id', 'assistant_id', 'conversation_id']
           = to_jsonb(old) - array['user_id', 'assistant_id', 'conversation_id'] then
        return new;
    end if;
    raise exception 'app.% is append-only', tg_table_name
        using errcode = 'insufficient_privilege', hint = 'append-only';
end
$$;
drop trigger usage_events_append_only on app.usage_events;
create trigger usage_events_append_only before update or delete on app.usage_events
    for each row execute function app.usage_events_append_only();

-- The owner re-costs the current tenant's messages (it already reads them: messages_owner).
create policy messages_owner_recost on app.messages for update to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
-- The owner reads the current tenant's usage events (to re-cost them; it may update them
-- already: usage_events_owner).
create policy usage_events_owner_read on app.usage_events for select to frontdesk_owner
    using (tenant_id = app.current_tenant());

-- ---------------------------------------------------------------------------------------
-- Re-costing a window (admins of the current tenant, or the operator on its path).

create function app.recost_usage(p_from timestamptz, p_to timestamptz, p_provider text, p_model text,
                                 out messages bigint, out usage_events bigint, out conversations bigint,
                                 out usage_daily bigint, out limit_state bigint, out cost_usd_change numeric)
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.current_tenant();
    upto timestamptz := coalesce(p_to, now());
    zone text;
    budget numeric;
    r record;
    c record;
    d numeric;
    rollup uuid;
    assistant uuid;
    n bigint;
    month_from timestamptz;
    month_to timestamptz;
    -- One entry per changed fact: its conversation (messages), rollup row, time, and
    -- the change of its cost and of its unpriced count.
    conv_ids uuid[] := '{}';
    conv_changes numeric[] := '{}';
    rollup_ids uuid[] := '{}';
    fact_at timestamptz[] := '{}';
    cost_changes numeric[] := '{}';
    unpriced_changes integer[] := '{}';
begin
    if t is null or not app.can_write()
       or not (app.is_tenant_admin() or app.caller_kind() = 'operator') then
        raise exception 'recosting needs an admin of the tenant' using errcode = 'insufficient_privilege';
    end if;
    messages := 0;
    usage_events := 0;
    conversations := 0;
    usage_daily := 0;
    limit_state := 0;
    select x.timezone, x.monthly_budget_usd into zone, budget from app.tenants x where x.id = t;

    -- The facts, locked by id; each priced again at its own time.
    for r in select m.id, m.conversation_id, m.owner_user_id, m.created_at, m.provider, m.model,
                    m.prompt_tokens, m.completion_tokens, m.cached_tokens, m.cost_usd, m.cost_source,
                    m.priced_model, m.rollup_id
               from app.messages m
              where m.tenant_id = t and m.created_at >= p_from and m.created_at < upto
                and m.cost_source in ('catalog', 'catalog_prefix', 'unpriced')
                and (p_provider is null or m.provider = p_provider)
                and (p_model is null or m.model = p_model or app.model_extends(m.model, p_model))
              order by m.id
                for update loop
        select x.cost_usd, x.cost_source, x.priced_model into c
          from app.tokens_cost(t, r.provider, r.model, r.created_at, r.prompt_tokens,
                               r.completion_tokens, r.cached_tokens) x;
        continue when c.cost_usd = r.cost_usd and c.cost_source = r.cost_source
                      and c.priced_model is not distinct from r.priced_model;
        update app.messages m
           set cost_usd = c.cost_usd, cost_source = c.cost_source, priced_model = c.priced_model
         where m.tenant_id = t and m.id = r.id;
        messages := messages + 1;
        rollup := r.rollup_id;
        if rollup is null then
            -- Written before rollup_id: the row its insert trigger chose then.
            select v.assistant_id into assistant from app.conversations v
             where v.tenant_id = t and v.id = r.conversation_id;
            select u.id into rollup from app.usage_daily u
             where u.tenant_id = t and u.day = (r.created_at at time zone zone)::date
               and u.user_id is not distinct from r.owner_user_id
               and u.assistant_id is not distinct from assistant
               and u.provider is not distinct from r.provider and u.model is not distinct from r.model;
        end if;
        d := c.cost_usd - r.cost_usd;
        conv_ids := conv_ids || r.conversation_id;
        conv_changes := conv_changes || d;
        rollup_ids := rollup_ids || rollup;
        fact_at := fact_at || r.created_at;
        cost_changes := cost_changes || d;
        unpriced_changes := unpriced_changes
                            || ((c.cost_source = 'unpriced')::int - (r.cost_source = 'unpriced')::int);
    end loop;

    for r in select e.id, e.user_id, e.assistant_id, e.created_at, e.provider, e.model,
                    e.prompt_tokens, e.completion_tokens, e.cached_tokens, e.cost_usd, e.cost_source,
                    e.priced_model, e.rollup_id
               from app.usage_events e
              where e.tenant_id = t and e.created_at >= p_from and e.created_at < upto
                and e.unit is null and e.cost_source in ('catalog', 'catalog_prefix', 'unpriced')
                and (p_provider is null or e.provider = p_provider)
                and (p_model is null or e.model = p_model or app.model_extends(e.model, p_model))
              order by e.id
                for update loop
        select x.cost_usd, x.cost_source, x.priced_model into c
          from app.tokens_cost(t, r.provider, r.model, r.created_at, r.prompt_tokens,
                               r.completion_tokens, r.cached_tokens) x;
        continue when c.cost_usd = r.cost_usd and c.cost_source = r.cost_source
                      and c.priced_model is not distinct from r.priced_model;
        update app.usage_events e
           set cost_usd = c.cost_usd, cost_source = c.cost_source, priced_model = c.priced_model
         where e.tenant_id = t and e.id = r.id;
        usage_events := usage_events + 1;
        rollup := r.rollup_id;
        if rollup is null then
            select u.id into rollup from app.usage_daily u
             where u.tenant_id = t and u.day = (r.created_at at time zone zone)::date
               and u.user_id is not distinct from r.user_id
               and u.assistant_id is not distinct from r.assistant_id
               and u.provider is not distinct from r.provider and u.model is not distinct from r.model;
        end if;
        d := c.cost_usd - r.cost_usd;
        rollup_ids := rollup_ids || rollup;
        fact_at := fact_at || r.created_at;
        cost_changes := cost_changes || d;
        unpriced_changes := unpriced_changes
                            || ((c.cost_source = 'unpriced')::int - (r.cost_source = 'unpriced')::int);
    end loop;

    select coalesce(sum(x.d), 0) into cost_usd_change from unnest(cost_changes) x (d);

    -- The conversations' totals, by id.
    for r in select x.id, sum(x.d) as d from unnest(conv_ids, conv_changes) x (id, d)
              group by x.id having sum(x.d) <> 0 order by x.id loop
        update app.conversations v set cost_usd = greatest(v.cost_usd + r.d, 0)
         where v.tenant_id = t and v.id = r.id;
        get diagnostics n = row_count;
        conversations := conversations + n;
    end loop;

    -- The month's cost in the limit state: the facts in its month window, when the tenant
    -- has a budget (without one the state counts no cost, and setting one restarts it
    -- from the rollups).
    if budget is not null and cardinality(fact_at) > 0 then
        select x.month_start into month_from from app.limit_state x where x.tenant_id = t for update;
        if found then
            month_to := (date_trunc('month', month_from at time zone zone) + interval '1 month') at time zone zone;
            select coalesce(sum(x.d), 0) into d from unnest(fact_at, cost_changes) x (at, d)
             where x.at >= month_from and x.at < month_to;
            if d <> 0 then
                update app.limit_state x set month_used = greatest(x.month_used + d, 0)
                 where x.tenant_id = t;
                get diagnostics limit_state = row_count;
            end if;
        end if;
    end if;

    -- The rollup rows, by id.
    for r in select x.id, sum(x.d) as d, sum(x.u)::bigint as u
               from unnest(rollup_ids, cost_changes, unpriced_changes) x (id, d, u)
              where x.id is not null
              group by x.id having sum(x.d) <> 0 or sum(x.u) <> 0 order by x.id loop
        update app.usage_daily x
           set cost_usd = greatest(x.cost_usd + r.d, 0), unpriced_count = greatest(x.unpriced_count + r.u, 0)
         where x.tenant_id = t and x.id = r.id;
        get diagnostics n = row_count;
        usage_daily := usage_daily + n;
    end loop;
end
$$;
revoke execute on function app.recost_usage(timestamptz, timestamptz, text, text) from public;
grant execute on function app.recost_usage(timestamptz, timestamptz, text, text) to frontdesk_app, frontdesk_operator;
