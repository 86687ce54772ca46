-- 0014_contact_channels: contacts found by their id on a channel, and phone numbers as
-- people type them (issue 13, item 4).
--
-- 1. A tenant's default country (ISO 3166-1 alpha-2). The server normalizes a phone number
--    typed without a country code (`0812-3456-7890`) to E.164 with it; without one, such
--    a number is refused. Which codes exist is the server's to say (it knows
--    libphonenumber's list); the database keeps the shape.
--
-- 2. app.contact_channels: one row per contact and channel, holding the contact's id on
--    that channel. `contacts.channel_ids` stays what the API reads and writes (a JSON
--    object, channel → id); a trigger keeps these rows equal to it, so the database
--    itself refuses a second contact with the same id on a channel (unique per tenant and
--    channel) and a lookup by channel id is one index probe. WhatsApp ids are phone
--    numbers in WhatsApp's own form (`wa_id`: the E.164 digits without `+`); the server
--    normalizes them, the check below keeps the form.
--
-- 3. Existing data: WhatsApp ids written with `+`, spaces, dashes, dots or parentheses
--    around an international number are rewritten to digits only; then every entry is
--    copied. A tenant whose contacts share an id on a channel, or hold an id the new
--    checks refuse, stops the migration with a message naming them (fix those contacts,
--    then migrate again): nothing is dropped silently.
--
-- 4. create_tenant and user_tenants return the new column.

alter table app.tenants add column default_country text,
    add constraint tenants_default_country_check check (default_country ~ '^[A-Z]{2}$');
comment on column app.tenants.default_country is 'ISO 3166-1 alpha-2 code: the country of phone numbers typed without a country code (null: such numbers are refused)';

-- ---------------------------------------------------------------------------------------
-- The contact's id on each channel.

create table app.contact_channels (
    tenant_id   uuid not null references app.tenants (id) on delete cascade,
    contact_id  uuid not null,
    channel     text not null,
    external_id text not null,
    constraint contact_channels_pkey primary key (tenant_id, contact_id, channel),
    constraint contact_channels_external_id_key unique (tenant_id, channel, external_id),
    constraint contact_channels_contact_id_fkey foreign key (tenant_id, contact_id)
        references app.contacts (tenant_id, id) on delete cascade,
    constraint contact_channels_channel_check check (channel ~ '^[a-z][a-z0-9_]{0,31}$'),
    constraint contact_channels_external_id_check check (
        length(external_id) between 1 and 200 and external_id = btrim(external_id)),
    constraint contact_channels_whatsapp_check check (
        channel <> 'whatsapp' or external_id ~ '^[1-9][0-9]{6,14}$')
);
comment on table app.contact_channels is 'the entries of contacts.channel_ids, kept by the contacts_channels trigger: unique per tenant and channel, and what lookups by channel id read';
comment on column app.contact_channels.external_id is 'the contact''s id on the channel; for whatsapp the E.164 digits without +';

-- Existing WhatsApp ids to digits only where that leaves an international number (before
-- the trigger exists: the copy below does the rest). The owner is subject to the forced
-- row policies, which only name the request role: lifted for this statement.
alter table app.contacts no force row level security;
update app.contacts c
   set channel_ids = jsonb_set(c.channel_ids, '{whatsapp}',
                               to_jsonb(regexp_replace(c.channel_ids ->> 'whatsapp', '[^0-9]', '', 'g')))
 where jsonb_typeof(c.channel_ids -> 'whatsapp') = 'string'
   and c.channel_ids ->> 'whatsapp' ~ '^\s*\+?[0-9][0-9 ().-]*$'
   and regexp_replace(c.channel_ids ->> 'whatsapp', '[^0-9]', '', 'g') ~ '^[1-9][0-9]{6,14}$'
   and c.channel_ids ->> 'whatsapp' <> regexp_replace(c.channel_ids ->> 'whatsapp', '[^0-9]', '', 'g');

do $$
declare
    bad text;
begin
    select string_agg(format('tenant %s contact %s %s: %s', c.tenant_id, c.id, e.key, e.value), '; ')
      into bad
      from app.contacts c, jsonb_each(c.channel_ids) e
     where jsonb_typeof(e.value) <> 'string'
        or e.key !~ '^[a-z][a-z0-9_]{0,31}$'
        or length(e.value #>> '{}') not between 1 and 200
        or (e.value #>> '{}') <> btrim(e.value #>> '{}')
        or (e.key = 'whatsapp' and (e.value #>> '{}') !~ '^[1-9][0-9]{6,14}$');
    if bad is not null then
        raise exception 'contacts hold channel ids the new rules refuse: %', bad
            using hint = 'channel names are lower-case (a-z, 0-9, _), ids 1 to 200 characters without surrounding spaces, WhatsApp ids international digits; correct these contacts'' channel_ids, then migrate again';
    end if;
    select string_agg(format('tenant %s %s %s: contacts %s', d.tenant_id, d.channel, d.external_id, d.ids), '; ')
      into bad
      from (select c.tenant_id, e.key as channel, e.value #>> '{}' as external_id,
                   string_agg(c.id::text, ', ' order by c.id) as ids
              from app.contacts c, jsonb_each(c.channel_ids) e
             group by 1, 2, 3
            having count(*) > 1) d;
    if bad is not null then
        raise exception 'contacts share an id on a channel: %', bad
            using hint = 'an id on a channel now belongs to one contact of a tenant: merge these contacts or remove the id from all but one, then migrate again';
    end if;
end
$$;

insert into app.contact_channels (tenant_id, contact_id, channel, external_id)
select c.tenant_id, c.id, e.key, e.value #>> '{}'
  from app.contacts c, jsonb_each(c.channel_ids) e;
alter table app.contacts force row level security;

-- contacts.channel_ids → its rows here. Runs as the caller: the row policies below are
-- those of contacts, so whoever may write a contact may write its channel ids. An id
-- another contact of the tenant holds fails on contact_channels_external_id_key (409).
create function app.contacts_channels() returns trigger
    language plpgsql
    set search_path = pg_catalog
    as $$
declare
    entry record;
begin
    if tg_op = 'UPDATE' then
        if new.channel_ids is not distinct from old.channel_ids then
            return null;
        end if;
        delete from app.contact_channels ch where ch.tenant_id = new.tenant_id and ch.contact_id = new.id;
    end if;
    for entry in select e.key, e.value from jsonb_each(new.channel_ids) e loop
        if jsonb_typeof(entry.value) <> 'string' then
            raise exception 'channel id of % is not a string', entry.key
                using errcode = 'check_violation', constraint = 'contact_channels_external_id_check';
        end if;
        -- One row per statement, VALUES (Citus routes it to the tenant's shard).
        insert into app.contact_channels (tenant_id, contact_id, channel, external_id)
        values (new.tenant_id, new.id, entry.key, entry.value #>> '{}');
    end loop;
    return null;
end
$$;
create trigger contacts_channels after insert or update of channel_ids on app.contacts
    for each row execute function app.contacts_channels();

alter table app.contact_channels enable row level security;
alter table app.contact_channels force row level security;
create policy contact_channels_select on app.contact_channels for select to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and tenant_id = app.current_tenant() and app.is_tenant_staff());
create policy contact_channels_insert on app.contact_channels for insert to frontdesk_app
    with check (app.caller_kind() in ('key', 'user') and tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write());
create policy contact_channels_delete on app.contact_channels for delete to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and tenant_id = app.current_tenant() and app.is_tenant_staff() and app.can_write());
grant select, insert, delete on app.contact_channels to frontdesk_app;
grant select, insert, update, delete on app.contact_channels to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- The tenant functions that name every column return default_country too.

-- replaces app.create_tenant (stores and returns default_country)
drop function app.create_tenant(uuid, jsonb, uuid);
create function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
                   strict_limits boolean, limit_warning_share numeric, limits_on_new_conversations text[],
                   default_country text)
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
        search_language, strict_limits, limit_warning_share, limits_on_new_conversations, default_country)
    select p_id, f.slug, f.name, coalesce(f.kind, 'other'), coalesce(f.timezone, 'UTC'),
           coalesce(f.locale, 'en'), f.email, f.phone, f.address, f.website, f.logo_url,
           f.llm_provider, f.llm_model, f.llm_temperature, f.llm_max_tokens, f.system_prompt,
           f.rate_limit_per_minute, f.daily_token_limit, f.monthly_budget_usd,
           coalesce(f.features, '{}'), coalesce(f.branding, '{}'), coalesce(f.is_active, true),
           coalesce(f.search_language, 'simple'), coalesce(f.strict_limits, false),
           -- (absent: the default share; null: no warnings)
           case when p_fields ? 'limit_warning_share' then f.limit_warning_share else 0.80 end,
           coalesce(f.limits_on_new_conversations, '{}'), f.default_country
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
           t.limit_warning_share, t.limits_on_new_conversations, t.default_country
    from app.tenants t where t.id = p_id;
end
$$;
revoke execute on function app.create_tenant(uuid, jsonb, uuid) from public;
grant execute on function app.create_tenant(uuid, jsonb, uuid) to frontdesk_app, frontdesk_operator;

-- replaces app.user_tenants (returns default_country)
drop function app.user_tenants(uuid, bigint);
create function app.user_tenants(p_after_id uuid, p_limit bigint)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
                   strict_limits boolean, limit_warning_share numeric, limits_on_new_conversations text[],
                   default_country text, member_role text)
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
           t.limit_warning_share, t.limits_on_new_conversations, t.default_country,
           roles[array_position(ids, t.id)]
    from app.tenants t
    where t.id = any (ids)
    order by t.id desc
    limit p_limit;
end
$$;
revoke execute on function app.user_tenants(uuid, bigint) from public;
grant execute on function app.user_tenants(uuid, bigint) to frontdesk_app;
