-- 0014_contact_channels, reverted: the tenant functions as 0011 left them, no channel
-- table, no default country. WhatsApp ids the up rewrote to digits stay so in
-- contacts.channel_ids (an equally valid form before 0014).

drop function app.create_tenant(uuid, jsonb, uuid);
create function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
                   strict_limits boolean, limit_warning_share numeric, limits_on_new_conversations text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    kind_ text := app.caller_kind();
    owner_id uuid := coalesce(app.current_user_id(), p_owner);
    new_slug text;
begin
    if kind_ is distinct from 'user' and kind_ is distinct from 'operator' then
        raise exception 'only people and the operator create tenants' using errcode = 'insufficient_privilege';
    end if;
    if kind_ = 'user' and app.current_user_id() is null then
        raise exception 'a user request names a user' using errcode = 'insufficient_privilege';
    end if;
    insert into app.tenants (
        id, slug, name, kind, timezone, locale, email, phone, address, website, logo_url,
        llm_provider, llm_model, llm_temperature, llm_max_tokens, system_prompt,
        rate_limit_per_minute, daily_token_limit, monthly_budget_usd, features, branding, is_active,
        search_language, strict_limits, limit_warning_share, limits_on_new_conversations)
    select p_id, f.slug, f.name, coalesce(f.kind, 'other'), coalesce(f.timezone, 'UTC'),
           coalesce(f.locale, 'en'), f.email, f.phone, f.address, f.website, f.logo_url,
           f.llm_provider, f.llm_model, f.llm_temperature, f.llm_max_tokens, f.system_prompt,
           f.rate_limit_per_minute, f.daily_token_limit, f.monthly_budget_usd,
           coalesce(f.features, '{}'), coalesce(f.branding, '{}'), coalesce(f.is_active, true),
           coalesce(f.search_language, 'simple'), coalesce(f.strict_limits, false),
           -- (absent: the default share; null: no warnings)
           case when p_fields ? 'limit_warning_share' then f.limit_warning_share else 0.80 end,
           coalesce(f.limits_on_new_conversations, '{}')
    from jsonb_populate_record(null::app.tenants, p_fields) f
    returning app.tenants.slug into new_slug;
    if owner_id is not null then
        insert into app.memberships (tenant_id, user_id, role) values (p_id, owner_id, 'owner');
    end if;
    -- (The slug as a value: a statement naming app.tenants would be routed whole, the
    -- call included, to the tenant's shard on Citus, where it cannot write the global table.)
    perform app.take_slug(p_id, new_slug);
    return query
    select t.id, t.slug, t.name, t.kind, t.timezone, t.locale, t.email, t.phone, t.address, t.website,
           t.logo_url, t.llm_provider, t.llm_model, t.llm_temperature, t.llm_max_tokens, t.system_prompt,
           t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd, t.features, t.branding,
           t.is_active, t.created_at, t.updated_at, t.search_language, t.strict_limits,
           t.limit_warning_share, t.limits_on_new_conversations
    from app.tenants t where t.id = p_id;
end
$$;
revoke execute on function app.create_tenant(uuid, jsonb, uuid) from public;
grant execute on function app.create_tenant(uuid, jsonb, uuid) to frontdesk_app, frontdesk_operator;

drop function app.user_tenants(uuid, bigint);
create function app.user_tenants(p_after_id uuid, p_limit bigint)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
                   strict_limits boolean, limit_warning_share numeric, limits_on_new_conversations text[],
                   member_role text)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    ids uuid[];
    roles text[];
begin
    if app.caller_kind() is distinct from 'user' or app.current_user_id() is null then
        return;
    end if;
    -- Two plain reads, not a join: the memberships are spread over every tenant's shard,
    -- which Citus cannot join to the tenants they name in one distributed plan.
    select array_agg(m.tenant_id), array_agg(m.role) into ids, roles
      from app.memberships m
     where m.user_id = app.current_user_id() and (p_after_id is null or m.tenant_id < p_after_id);
    if ids is null then
        return;
    end if;
    return query
    select t.id, t.slug, t.name, t.kind, t.timezone, t.locale, t.email, t.phone, t.address, t.website,
           t.logo_url, t.llm_provider, t.llm_model, t.llm_temperature, t.llm_max_tokens, t.system_prompt,
           t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd, t.features, t.branding,
           t.is_active, t.created_at, t.updated_at, t.search_language, t.strict_limits,
           t.limit_warning_share, t.limits_on_new_conversations, roles[array_position(ids, t.id)]
    from app.tenants t
    where t.id = any (ids)
    order by t.id desc
    limit p_limit;
end
$$;
revoke execute on function app.user_tenants(uuid, bigint) from public;
grant execute on function app.user_tenants(uuid, bigint) to frontdesk_app;

drop trigger contacts_channels on app.contacts;
drop function app.contacts_channels();
drop table app.contact_channels;

alter table app.tenants drop constraint tenants_default_country_check, drop column default_country;
