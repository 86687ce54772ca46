-- Foundation: tenants, users, memberships, API keys, and the request context.
--
-- Roles (created by `frontdesk` before migrations run, see crates/frontdesk-pg/src/roles.rs):
--   frontdesk_owner          owns everything below, runs migrations
--   frontdesk_authenticator  the server's login role; may only SET ROLE to the three below
--   frontdesk_user           requests made by people (JWT)
--   frontdesk_service        requests made with a tenant API key
--   frontdesk_operator       operator endpoints and cross-tenant workers (BYPASSRLS)
--
-- Policies read only the transaction's settings (`SET LOCAL frontdesk.*`) through the
-- small functions below: no subquery and no table access in any policy, so the same
-- schema runs on Citus. `app.assert_principal()` checks those settings against the
-- memberships and keys once per transaction.

create schema app;
comment on schema app is 'Frontdesk: every table, view and function of the product';
grant usage on schema app to frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_authenticator;

-- ---------------------------------------------------------------------------------------
-- The request context, as set by `SET LOCAL` in the request preamble.
-- `stable` SQL functions without side effects: the planner inlines them into policies.

create function app.current_tenant() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('frontdesk.tenant_id', true), '')::uuid $$;

create function app.current_user_id() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('frontdesk.user_id', true), '')::uuid $$;

create function app.current_key_id() returns uuid
    language sql stable parallel safe
    as $$ select nullif(current_setting('frontdesk.key_id', true), '')::uuid $$;

-- 'owner' | 'admin' | 'agent' | 'member' for people; null for keys.
create function app.current_member_role() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('frontdesk.member_role', true), '') $$;

-- 'full' | 'read' for API keys; null for people.
create function app.current_key_scope() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('frontdesk.key_scope', true), '') $$;

-- Owners and admins manage the tenant, its members and its keys.
create function app.is_tenant_admin() returns boolean
    language sql stable parallel safe
    as $$ select coalesce(app.current_member_role() in ('owner', 'admin'), false) $$;

-- Staff see all of the tenant's data: owners, admins, agents, and API keys.
create function app.is_tenant_staff() returns boolean
    language sql stable parallel safe
    as $$ select coalesce(app.current_member_role() in ('owner', 'admin', 'agent'), false)
              or app.current_key_scope() is not null $$;

-- Everyone but a read-only key may write (policies narrow further what each may write).
create function app.can_write() returns boolean
    language sql stable parallel safe
    as $$ select app.current_key_scope() is distinct from 'read' $$;

grant execute on function app.current_tenant(), app.current_user_id(), app.current_key_id(),
    app.current_member_role(), app.current_key_scope(), app.is_tenant_admin(),
    app.is_tenant_staff(), app.can_write()
    to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Shared helpers

create function app.touch_updated_at() returns trigger
    language plpgsql
    as $$
begin
    new.updated_at := now();
    return new;
end
$$;

-- An IANA time zone name as PostgreSQL knows it (the zone PostgreSQL uses for day
-- boundaries later, so PostgreSQL's list is the one that matters). Case-sensitive,
-- and abbreviations such as 'PST' or POSIX strings such as 'UTC+5' are refused.
create function app.is_valid_timezone(tz text) returns boolean
    language sql stable
    as $$ select exists (select 1 from pg_catalog.pg_timezone_names where name = tz) $$;

-- A text search configuration shipped with PostgreSQL (english, indonesian, simple, …):
-- the language a tenant's messages are searched in.
create function app.is_search_language(lang text) returns boolean
    language sql stable
    as $$ select exists (select 1 from pg_catalog.pg_ts_config c
                         where c.cfgname = lang and c.cfgnamespace = 'pg_catalog'::regnamespace) $$;
grant execute on function app.is_search_language(text) to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Tenants: one business, workspace or brand. Not a tenant table in the `tenant_id` sense
-- (its key is `id`): RLS is enabled for the request roles and not forced, so the owner's
-- SECURITY DEFINER functions below can read it.

create table app.tenants (
    id                    uuid primary key,
    slug                  text not null,
    name                  text not null,
    kind                  text not null default 'other',
    timezone              text not null default 'UTC',
    locale                text not null default 'en',
    email                 text,
    phone                 text,
    address               text,
    website               text,
    logo_url              text,
    llm_provider          text,
    llm_model             text,
    llm_temperature       numeric(3, 2),
    llm_max_tokens        integer,
    system_prompt         text,
    rate_limit_per_minute integer,
    daily_token_limit     bigint,
    monthly_budget_usd    numeric(14, 6),
    features              jsonb not null default '{}',
    branding              jsonb not null default '{}',
    is_active             boolean not null default true,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    search_language       text not null default 'simple',
    constraint tenants_slug_key unique (slug),
    constraint tenants_slug_check check (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'
                                         -- a slug never looks like an id: {tenant} is either
                                         and slug !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
    constraint tenants_name_check check (length(btrim(name)) between 1 and 200),
    constraint tenants_kind_check check (kind in ('restaurant', 'retail', 'service', 'other')),
    constraint tenants_timezone_check check (app.is_valid_timezone(timezone)),
    constraint tenants_locale_check check (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    constraint tenants_email_check check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    constraint tenants_phone_check check (phone ~ '^\+[1-9][0-9]{6,14}$'),
    constraint tenants_website_check check (website ~ '^https?://'),
    constraint tenants_logo_url_check check (logo_url ~ '^https?://'),
    constraint tenants_llm_temperature_check check (llm_temperature between 0 and 2),
    constraint tenants_llm_max_tokens_check check (llm_max_tokens > 0),
    constraint tenants_rate_limit_per_minute_check check (rate_limit_per_minute > 0),
    constraint tenants_daily_token_limit_check check (daily_token_limit > 0),
    constraint tenants_monthly_budget_usd_check check (monthly_budget_usd >= 0),
    constraint tenants_features_check check (jsonb_typeof(features) = 'object'),
    constraint tenants_branding_check check (jsonb_typeof(branding) = 'object'),
    constraint tenants_search_language_check check (app.is_search_language(search_language))
);
comment on column app.tenants.timezone is 'IANA zone: the tenant''s days (usage, limits, business hours) are counted in it';
comment on column app.tenants.rate_limit_per_minute is 'message and usage writes per minute; null = unlimited';
comment on column app.tenants.daily_token_limit is 'tokens per day in the tenant''s time zone; null = unlimited';
comment on column app.tenants.monthly_budget_usd is 'LLM cost per calendar month; null = unlimited';
comment on column app.tenants.search_language is 'text search configuration for messages (PostgreSQL''s built-in ones); simple = no stemming';

create trigger tenants_touch before update on app.tenants
    for each row execute function app.touch_updated_at();

alter table app.tenants enable row level security;
create policy tenants_select on app.tenants for select to frontdesk_user, frontdesk_service
    using (id = app.current_tenant());
create policy tenants_update on app.tenants for update to frontdesk_user
    using (id = app.current_tenant() and app.is_tenant_admin())
    with check (id = app.current_tenant() and app.is_tenant_admin());
create policy tenants_delete on app.tenants for delete to frontdesk_user
    using (id = app.current_tenant() and app.current_member_role() = 'owner');

grant select on app.tenants to frontdesk_user, frontdesk_service;
grant update, delete on app.tenants to frontdesk_user;
grant select, insert, update, delete on app.tenants to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Users: people, keyed by their identity provider's `sub`. Global (a user may belong to
-- several tenants); each user sees only their own row.

create table app.users (
    id             uuid primary key,
    email          text,
    name           text,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    last_active_at timestamptz not null default now()
);
comment on column app.users.id is 'the `sub` claim of the user''s JWT';

create trigger users_touch before update on app.users
    for each row execute function app.touch_updated_at();

alter table app.users enable row level security;
create policy users_self on app.users for select to frontdesk_user
    using (id = app.current_user_id());

grant select on app.users to frontdesk_user;
grant select, insert, update, delete on app.users to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Memberships and API keys: the principals of a tenant. `app.assert_principal()` reads
-- them as their owner, so RLS is enabled here but not forced (see docs/ARCHITECTURE.md,
-- "The recursion trap"); `frontdesk migrate verify` knows these two exceptions.

create table app.memberships (
    tenant_id  uuid not null references app.tenants (id) on delete cascade,
    user_id    uuid not null references app.users (id) on delete cascade,
    role       text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint memberships_pkey primary key (tenant_id, user_id),
    constraint memberships_role_check check (role in ('owner', 'admin', 'agent', 'member'))
);
create index memberships_user_idx on app.memberships (user_id);

create trigger memberships_touch before update on app.memberships
    for each row execute function app.touch_updated_at();

-- A tenant keeps at least one owner. The advisory lock serializes concurrent demotions
-- and removals within one tenant: the second transaction waits, then sees the first's
-- commit (each statement of a volatile function takes a new snapshot).
create function app.memberships_keep_an_owner() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    perform pg_advisory_xact_lock(hashtextextended('frontdesk.owners:' || old.tenant_id::text, 0));
    if not exists (select 1 from app.tenants where id = old.tenant_id) then
        return null; -- the tenant itself is being deleted
    end if;
    if not exists (select 1 from app.memberships where tenant_id = old.tenant_id and role = 'owner') then
        raise exception 'a tenant must keep at least one owner'
            using errcode = 'check_violation', constraint = 'memberships_last_owner',
                  table = 'memberships', schema = 'app';
    end if;
    return null;
end
$$;
create trigger memberships_keep_an_owner after update of role or delete on app.memberships
    for each row when (old.role = 'owner') execute function app.memberships_keep_an_owner();

alter table app.memberships enable row level security;
create policy memberships_select on app.memberships for select to frontdesk_user
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
-- Admins manage members; only an owner can grant, change or remove an owner's role.
create policy memberships_insert on app.memberships for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin()
                and (role <> 'owner' or app.current_member_role() = 'owner'));
create policy memberships_update on app.memberships for update to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin()
           and (role <> 'owner' or app.current_member_role() = 'owner'))
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin()
                and (role <> 'owner' or app.current_member_role() = 'owner'));
create policy memberships_delete on app.memberships for delete to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin()
           and (role <> 'owner' or app.current_member_role() = 'owner'));

grant select, insert, update, delete on app.memberships to frontdesk_user, frontdesk_operator;

create table app.api_keys (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    id           uuid not null,
    name         text not null,
    prefix       text not null,
    secret_hash  bytea not null,
    scopes       text[] not null,
    created_by   uuid references app.users (id) on delete set null,
    created_at   timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    constraint api_keys_pkey primary key (tenant_id, id),
    constraint api_keys_secret_hash_key unique (secret_hash),
    constraint api_keys_name_check check (length(btrim(name)) between 1 and 100),
    constraint api_keys_secret_hash_check check (length(secret_hash) = 32),
    constraint api_keys_scopes_check
        check (cardinality(scopes) >= 1 and scopes <@ array['full', 'read']::text[])
);
create index api_keys_created_by_idx on app.api_keys (created_by) where created_by is not null;
comment on column app.api_keys.secret_hash is 'SHA-256 of the whole secret; the secret itself is shown once and never stored';
comment on column app.api_keys.prefix is 'the first characters of the secret, to recognise a key in lists and logs';

alter table app.api_keys enable row level security;
create policy api_keys_select on app.api_keys for select to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy api_keys_insert on app.api_keys for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy api_keys_update on app.api_keys for update to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin())
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());

grant select, insert on app.api_keys to frontdesk_user;
grant update (name, revoked_at) on app.api_keys to frontdesk_user;
grant select, insert, update, delete on app.api_keys to frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- The database's own check of the request context. Runs once at the start of every
-- transaction the server opens for a request, right after the `SET LOCAL`s. Raises
-- insufficient_privilege (42501) unless the settings describe a real principal:
--   frontdesk_user:     a user; with a tenant, an active membership with exactly that role
--   frontdesk_service:  a key of that tenant, not revoked, holding that scope
--   frontdesk_operator: anything (it bypasses RLS and is never used for a tenant's request)
-- `current_setting('role')` is the role set by `SET LOCAL ROLE`, also inside this
-- SECURITY DEFINER function (whose current_user is its owner).
create function app.assert_principal() returns void
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    request_role text := current_setting('role');
    t uuid := app.current_tenant();
    u uuid := app.current_user_id();
    k uuid := app.current_key_id();
    r text := app.current_member_role();
    s text := app.current_key_scope();
begin
    if request_role = 'frontdesk_operator' then
        return;
    elsif request_role = 'frontdesk_user' then
        if u is null or k is not null or s is not null then
            raise exception 'a user request names exactly one user and no key'
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
        if t is null then
            if r is not null then
                raise exception 'a member role needs a tenant' using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
            end if;
            return;
        end if;
        if not exists (select 1 from app.memberships m
                       where m.tenant_id = t and m.user_id = u and m.role = r) then
            raise exception 'user % is not a member of tenant % with role %', u, t, coalesce(r, 'null')
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
    elsif request_role = 'frontdesk_service' then
        if k is null or t is null or u is not null or r is not null then
            raise exception 'a service request names exactly one key and its tenant'
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
        if not exists (select 1 from app.api_keys a
                       join app.tenants tn on tn.id = a.tenant_id
                       where a.tenant_id = t and a.id = k and a.revoked_at is null
                         and tn.is_active
                         and (s = 'read' or s = any (a.scopes))
                         and s in ('full', 'read')) then
            raise exception 'key % is not a live key of tenant % with scope %', k, t, coalesce(s, 'null')
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
    else
        raise exception 'role % cannot make requests', request_role
            using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
    end if;
end
$$;
revoke execute on function app.assert_principal() from public;
grant execute on function app.assert_principal() to frontdesk_user, frontdesk_service, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Functions the server calls outside a request transaction (as frontdesk_authenticator)
-- or that must cross the boundaries RLS draws. Each checks what it needs itself.

-- Upsert a user from a verified JWT; the server calls it when it has not seen the user
-- for a while, so last_active_at is current to about a minute.
create function app.touch_user(p_id uuid, p_email text, p_name text) returns void
    language sql volatile security definer
    set search_path = pg_catalog
    as $$
    insert into app.users as u (id, email, name) values (p_id, p_email, p_name)
    on conflict (id) do update
        set email = coalesce(excluded.email, u.email),
            name = coalesce(excluded.name, u.name),
            last_active_at = now()
$$;
revoke execute on function app.touch_user(uuid, text, text) from public;
grant execute on function app.touch_user(uuid, text, text) to frontdesk_authenticator;

-- Resolve a tenant reference (id or slug) to its id and, for a user, their role in it.
-- Returns no row when the tenant does not exist; role is null when the user is not a member.
create function app.resolve_tenant(p_ref text, p_user uuid)
    returns table (tenant_id uuid, member_role text, is_active boolean)
    language sql stable security definer
    set search_path = pg_catalog
    as $$
    select t.id, m.role, t.is_active
    from app.tenants t
    left join app.memberships m on m.tenant_id = t.id and m.user_id = p_user
    where t.slug = p_ref
       or (p_ref ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
           and t.id = p_ref::uuid)
$$;
revoke execute on function app.resolve_tenant(text, uuid) from public;
grant execute on function app.resolve_tenant(text, uuid) to frontdesk_authenticator;

-- Find a key by the SHA-256 of its secret. Records use at most once a minute.
create function app.authenticate_key(p_hash bytea)
    returns table (tenant_id uuid, key_id uuid, scopes text[])
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    return query
    update app.api_keys a set last_used_at = now()
    from app.tenants t
    where a.secret_hash = p_hash and a.revoked_at is null and t.id = a.tenant_id and t.is_active
      and (a.last_used_at is null or a.last_used_at < now() - interval '1 minute')
    returning a.tenant_id, a.id, a.scopes;
    if not found then
        return query
        select a.tenant_id, a.id, a.scopes
        from app.api_keys a join app.tenants t on t.id = a.tenant_id
        where a.secret_hash = p_hash and a.revoked_at is null and t.is_active;
    end if;
end
$$;
revoke execute on function app.authenticate_key(bytea) from public;
grant execute on function app.authenticate_key(bytea) to frontdesk_authenticator;

-- Create a tenant; the signed-in user (if any) becomes its owner. Runs as the owner
-- because no tenant context can exist for a tenant that does not exist yet; callable
-- only by the request roles of people and the operator.
create function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
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
        rate_limit_per_minute, daily_token_limit, monthly_budget_usd, features, branding, is_active,
        search_language)
    select p_id, f.slug, f.name, coalesce(f.kind, 'other'), coalesce(f.timezone, 'UTC'),
           coalesce(f.locale, 'en'), f.email, f.phone, f.address, f.website, f.logo_url,
           f.llm_provider, f.llm_model, f.llm_temperature, f.llm_max_tokens, f.system_prompt,
           f.rate_limit_per_minute, f.daily_token_limit, f.monthly_budget_usd,
           coalesce(f.features, '{}'), coalesce(f.branding, '{}'), coalesce(f.is_active, true),
           coalesce(f.search_language, 'simple')
    from jsonb_populate_record(null::app.tenants, p_fields) f
    returning * into created;
    if owner_id is not null then
        insert into app.memberships (tenant_id, user_id, role) values (created.id, owner_id, 'owner');
    end if;
    return next created;
end
$$;
revoke execute on function app.create_tenant(uuid, jsonb, uuid) from public;
grant execute on function app.create_tenant(uuid, jsonb, uuid) to frontdesk_user, frontdesk_operator;

-- The tenants a user belongs to, with their role, newest first (ids are UUIDv7),
-- keyset-paginated by id.
create function app.user_tenants(p_after_id uuid, p_limit bigint)
    returns table (tenant app.tenants, member_role text)
    language sql stable security definer
    set search_path = pg_catalog
    as $$
    select t, m.role
    from app.memberships m join app.tenants t on t.id = m.tenant_id
    where m.user_id = app.current_user_id()
      and current_setting('role') = 'frontdesk_user'
      and (p_after_id is null or t.id < p_after_id)
    order by t.id desc
    limit p_limit
$$;
revoke execute on function app.user_tenants(uuid, bigint) from public;
grant execute on function app.user_tenants(uuid, bigint) to frontdesk_user;

-- Create a user row for a member an admin adds before that person has signed in.
-- Never changes an existing user.
create function app.provision_user(p_id uuid, p_email text, p_name text) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    if not (current_setting('role') = 'frontdesk_operator'
            or (current_setting('role') = 'frontdesk_user' and app.is_tenant_admin())) then
        raise exception 'only admins add members' using errcode = 'insufficient_privilege';
    end if;
    insert into app.users (id, email, name) values (p_id, p_email, p_name)
    on conflict (id) do nothing;
end
$$;
revoke execute on function app.provision_user(uuid, text, text) from public;
grant execute on function app.provision_user(uuid, text, text) to frontdesk_user, frontdesk_operator;

-- A tenant's members with their profile (users' rows are otherwise visible only to
-- themselves). Staff only, and only for the tenant of the current context.
create function app.tenant_members(p_after_user uuid, p_limit bigint, p_user uuid)
    returns table (user_id uuid, role text, email text, name text,
                   created_at timestamptz, updated_at timestamptz, last_active_at timestamptz)
    language sql stable security definer
    set search_path = pg_catalog
    as $$
    select m.user_id, m.role, u.email, u.name, m.created_at, m.updated_at, u.last_active_at
    from app.memberships m join app.users u on u.id = m.user_id
    where m.tenant_id = app.current_tenant()
      and (app.is_tenant_staff() or current_setting('role') = 'frontdesk_operator')
      and (p_after_user is null or m.user_id > p_after_user)
      and (p_user is null or m.user_id = p_user)
    order by m.user_id
    limit p_limit
$$;
revoke execute on function app.tenant_members(uuid, bigint, uuid) from public;
grant execute on function app.tenant_members(uuid, bigint, uuid) to frontdesk_user, frontdesk_operator;
