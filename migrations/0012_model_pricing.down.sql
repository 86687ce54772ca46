-- Back to 0011: prices by exact name only, no cached or reasoning tokens, no rollup row on
-- the facts, no recost. Fails while a stored fact or reservation has cost_source
-- 'catalog_prefix' (the former checks do not allow it).

drop function app.recost_usage(timestamptz, timestamptz, text, text);

drop policy usage_events_owner_read on app.usage_events;
drop policy messages_owner_recost on app.messages;
drop trigger usage_events_append_only on app.usage_events;
create trigger usage_events_append_only before update or delete on app.usage_events
    for each row execute function app.refuse_change();
drop function app.usage_events_append_only();
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
    end if;
    raise exception 'messages are append-only; an admin may redact one'
        using errcode = 'insufficient_privilege', hint = 'append-only';
end
$$;

create or replace function app.usage_events_add_usage() returns trigger
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
    perform app.add_usage(new.tenant_id, new.created_at, zone, new.owner_user_id, assistant,
                          new.provider, new.model, new.cost_source is not null, 1,
                          (new.role = 'user')::int, (new.role = 'assistant')::int,
                          new.prompt_tokens, new.completion_tokens, new.cost_usd,
                          new.cost_source = 'unpriced', new.latency_ms);
    return new;
end
$$;

drop function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int, int, int,
                            bigint, bigint, numeric, boolean, int);
create function app.add_usage(p_tenant uuid, p_at timestamptz, p_zone text, p_user uuid,
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
revoke execute on function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int,
                                         int, int, bigint, bigint, numeric, boolean, int) from public;

create or replace function app.usage_events_cost() returns trigger
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

create or replace function app.messages_cost() returns trigger
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

create or replace function app.token_cost(p_tenant uuid, p_provider text, p_model text, p_at timestamptz,
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



drop function app.tokens_cost(uuid, text, text, timestamptz, integer, integer, integer);
drop function app.price_match(uuid, text, text, timestamptz);
drop function app.model_extends(text, text);

alter table app.limit_reservations drop constraint limit_reservations_cost_source_check;
alter table app.limit_reservations add constraint limit_reservations_cost_source_check
    check (cost_source in ('provided', 'catalog', 'unpriced'));

alter table app.usage_events drop constraint usage_events_cost_source_check;
alter table app.usage_events add constraint usage_events_cost_source_check
    check (cost_source in ('provided', 'catalog', 'unpriced'));
alter table app.usage_events drop column rollup_id;
alter table app.usage_events drop column priced_model;
alter table app.usage_events drop column reasoning_tokens;
alter table app.usage_events drop column cached_tokens;

alter table app.messages drop constraint messages_cost_source_check;
alter table app.messages add constraint messages_cost_source_check
    check (cost_source in ('provided', 'catalog', 'unpriced'));
comment on column app.messages.cost_source is 'provided by the client, computed from the price catalog, or unpriced (tokens of a model without a price: costed 0)';
alter table app.messages drop column rollup_id;
alter table app.messages drop column priced_model;
alter table app.messages drop column reasoning_tokens;
alter table app.messages drop column cached_tokens;
