-- Removes what 0002 created and restores app.create_tenant as 0001 made it.
drop table app.idempotency_keys;
drop table app.feedback;
drop function app.feedback_created();
drop table app.messages;
drop function app.messages_before_insert();
drop function app.messages_append_only();
drop table app.conversation_transitions;
drop table app.events;
drop table app.conversations;
drop function app.conversations_record();
drop function app.conversations_follow_flow();
drop function app.refuse_change();
drop function app.emit_event(uuid, text, uuid, jsonb);
drop table app.contacts;
drop table app.assistants;
drop function app.assistants_check_flow();
drop function app.flow_definition(uuid, text);
drop table app.flows;
drop function app.flows_not_builtin();
drop table app.builtin_flows;
drop function app.flow_is_valid(text[], text, text[], jsonb);

create or replace function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
    returns setof app.tenants
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    owner_id uuid := coalesce(app.current_user_id(), p_owner);
    created app.tenants;
begin
    if current_setting('role') not in ('frontdesk_user', 'frontdesk_operator') then
        raise exception 'only people and the operator create tenants' using errcode = 'insufficient_privilege';
    end if;
    if current_setting('role') = 'frontdesk_user' and app.current_user_id() is null then
        raise exception 'a user request names a user' using errcode = 'insufficient_privilege';
    end if;
    insert into app.tenants (
        id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url,
        llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt,
        rate_limit_per_minute, daily_token_limit, monthly_budget_usd, features, branding, is_active)
    select p_id, f.slug, f.name, coalesce(f.kind, 'other'), coalesce(f.timezone, 'UTC'),
           coalesce(f.locale, 'en'), f.email, f.phone, f.address, f.website, f.logo_url,
           f.llm_provider, f.llm_model, f.llm_temperature, f.llm_max_tokens, f.system_prompt,
           f.rate_limit_per_minute, f.daily_token_limit, f.monthly_budget_usd,
           coalesce(f.features, '{}'), coalesce(f.branding, '{}'), coalesce(f.is_active, true)
    from jsonb_populate_record(null::app.tenants, p_fields) f
    returning * into created;
    if owner_id is not null then
        insert into app.memberships (tenant_id, user_id, role) values (created.id, owner_id, 'owner');
    end if;
    return next created;
end
$$;

alter table app.tenants drop column search_language;
drop function app.message_document(text, text);
drop function app.is_search_language(text);
drop function app.uuid_v7();
