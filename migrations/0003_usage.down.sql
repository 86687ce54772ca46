-- Removes what 0003 created and restores the message trigger as 0002 made it.
create or replace function app.messages_before_insert() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    -- As the owner: only the transaction's tenant is reachable (conversations_owner), and
    -- the caller's own visibility is checked here, as the select policy would.
    update app.conversations c
       set message_count = c.message_count + 1,
           prompt_tokens = c.prompt_tokens + coalesce(new.prompt_tokens, 0),
           completion_tokens = c.completion_tokens + coalesce(new.completion_tokens, 0),
           cost_usd = c.cost_usd + coalesce(new.cost_usd, 0),
           last_activity_at = greatest(c.last_activity_at, new.created_at)
      from app.tenants t
     where c.tenant_id = new.tenant_id and c.id = new.conversation_id and t.id = c.tenant_id
       and (app.is_tenant_staff() or c.user_id = app.current_user_id()
            or current_setting('role') = 'frontdesk_operator')
    returning c.user_id, t.search_language into new.owner_user_id, new.search_language;
    if not found then
        raise exception 'no conversation %', new.conversation_id
            using errcode = 'foreign_key_violation', constraint = 'messages_conversation_id_fkey',
                  table = 'messages', schema = 'app';
    end if;
    new.redacted_at := null;
    new.redacted_by := null;
    perform app.emit_event(new.tenant_id, 'message.created', new.id, jsonb_build_object(
        'id', new.id, 'conversation_id', new.conversation_id, 'role', new.role,
        'content_length', length(new.content),
        'prompt_tokens', new.prompt_tokens, 'completion_tokens', new.completion_tokens,
        'total_tokens', coalesce(new.prompt_tokens, 0) + coalesce(new.completion_tokens, 0),
        'model', new.model, 'provider', new.provider, 'cost_usd', trim_scale(new.cost_usd)::text,
        'latency_ms', new.latency_ms, 'action_taken', new.action_taken,
        'metadata', new.metadata, 'created_at', new.created_at));
    return new;
end
$$;

drop table app.usage_events;
drop function app.note_limit_reached(text, timestamptz, jsonb);
drop function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric);
drop function app.charge_window(uuid, text, text, timestamptz, timestamptz, numeric, numeric, numeric);
drop table app.limit_hits;
drop table app.limit_counters;
drop function app.usage_events_before_insert();
drop function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int, int, int,
                            bigint, bigint, numeric, boolean, int);
drop table app.usage_daily;
alter table app.messages drop column cost_source;
drop function app.token_cost(uuid, text, text, timestamptz, integer, integer);
drop function app.price_at(uuid, text, text, timestamptz);
drop table app.tenant_model_prices;
drop table app.model_prices;
