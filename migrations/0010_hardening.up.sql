-- 0010_hardening: tenant lookups that never depend on the planner, a tenant access version
-- that lets every server see a change of a tenant's slug or active flag at its next
-- request, and cost columns sized for the sums they hold.
--
-- 1. Resolving `{tenant}`. The server decides whether the path's reference is an id or a
--    slug (an id is a hyphenated UUID; a slug can never look like one, tenants_slug_check)
--    and calls the matching function, so no text is ever cast to uuid in SQL: a cast
--    inside an OR is evaluated in whatever order the planner picks, and after ANALYZE it
--    picked the cast first, turning every slug into a 422.
--
-- 2. The access version. Servers cache a reference's tenant (and a user's role in it)
--    briefly; the request's transaction carries the version the cache saw
--    (`frontdesk.tenant_version`) and app.assert_principal() refuses it when the tenant's
--    slug or active flag changed since (the server then evicts and retries with fresh
--    lookups). Memberships and keys need no version: assert_principal checks the exact role,
--    the key's revocation and scope, and the tenant's active flag on every transaction.
--
-- 3. Sums. A message's or a usage event's cost is below 10^10, and the totals that add
--    them (a conversation's cost, the daily usage rollups, the month's cost in the limit
--    state) were numeric(20, 10) or numeric(24, 10): two costly messages overflowed a
--    conversation's total, and from then on it accepted no costed message. They are now
--    numeric(38, 10): 10^18 facts of the largest cost before a total could overflow, and
--    still readable exactly by the server (rust_decimal holds 28 significant digits).
--    Costs computed from the catalog (tokens × price) can exceed 10^10, so the columns
--    holding one cost (messages, usage events, reservations) are widened alike.
--    Widening numeric's precision at the same scale rewrites no table.

alter table app.tenants add column access_version bigint not null default 0;
comment on column app.tenants.access_version is 'moves when the slug or the active flag changes: a request whose cached lookup saw another version is refused by app.assert_principal() and retried with fresh lookups';

create function app.tenants_access_version() returns trigger
    language plpgsql
    as $$
begin
    if new.slug is distinct from old.slug or new.is_active is distinct from old.is_active then
        new.access_version := old.access_version + 1;
    end if;
    return new;
end
$$;
-- Named to fire after tenants_touch (BEFORE triggers fire in name order); only the row itself.
create trigger tenants_version before update of slug, is_active on app.tenants
    for each row execute function app.tenants_access_version();

drop function app.resolve_tenant(text, uuid);

-- The tenant with this id and, for a user, their role in it; no row when there is none.
create function app.tenant_by_id(p_id uuid, p_user uuid)
    returns table (tenant_id uuid, member_role text, is_active boolean, access_version bigint)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    active boolean;
    version_ bigint;
    role_ text;
begin
    select t.is_active, t.access_version into active, version_ from app.tenants t where t.id = p_id;
    if not found then
        return;
    end if;
    if p_user is not null then
        select m.role into role_ from app.memberships m
         where m.tenant_id = p_id and m.user_id = p_user;
    end if;
    return query select p_id, role_, active, version_;
end
$$;
revoke execute on function app.tenant_by_id(uuid, uuid) from public;
grant execute on function app.tenant_by_id(uuid, uuid) to frontdesk_app;

-- The tenant holding this slug and, for a user, their role in it; no row when none holds
-- it (a slug resolves only while its tenant still holds it).
create function app.tenant_by_slug(p_slug text, p_user uuid)
    returns table (tenant_id uuid, member_role text, is_active boolean, access_version bigint)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    found_id uuid;
    active boolean;
    version_ bigint;
    role_ text;
begin
    select s.tenant into found_id from app.tenant_slugs s where s.slug = p_slug;
    if found_id is null then
        return;
    end if;
    -- Two plain reads by the tenant, not a join: Citus cannot always plan that one.
    select t.is_active, t.access_version into active, version_ from app.tenants t
     where t.id = found_id and t.slug = p_slug;
    if not found then
        return;
    end if;
    if p_user is not null then
        select m.role into role_ from app.memberships m
         where m.tenant_id = found_id and m.user_id = p_user;
    end if;
    return query select found_id, role_, active, version_;
end
$$;
revoke execute on function app.tenant_by_slug(text, uuid) from public;
grant execute on function app.tenant_by_slug(text, uuid) to frontdesk_app;

-- The database's own check of the request context, as in 0008, and now also the tenant's
-- access version when the request sets one (`frontdesk.tenant_version`): a request built
-- from a lookup older than the tenant's last change of slug or active flag is refused
-- (insufficient_privilege, hint `frontdesk-context`), so the server evicts and retries.
-- replaces app.assert_principal (checks the tenant's access version the request was resolved with)
create or replace function app.assert_principal() returns void
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    kind text := app.caller_kind();
    t uuid := app.current_tenant();
    u uuid := app.current_user_id();
    k uuid := app.current_key_id();
    r text := app.current_member_role();
    s text := app.current_key_scope();
    v text := nullif(current_setting('frontdesk.tenant_version', true), '');
begin
    if v is not null then
        if t is null or v !~ '^[0-9]{1,18}$' then
            raise exception 'a tenant version needs a tenant and is a number'
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
        if not exists (select 1 from app.tenants tn where tn.id = t and tn.access_version = v::bigint) then
            raise exception 'tenant % changed since the request''s lookup (version %)', t, v
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
    end if;
    if kind = 'operator' then
        if not (select rolbypassrls from pg_roles where rolname = session_user) then
            raise exception 'login % is not the operator', session_user
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
        if u is not null or k is not null or r is not null or s is not null then
            raise exception 'an operator request names no user and no key'
                using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
        end if;
    elsif kind = 'user' then
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
    elsif kind = 'key' then
        if k is null or t is null or u is not null or r is not null then
            raise exception 'a key request names exactly one key and its tenant'
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
        raise exception 'caller kind % cannot make requests here', coalesce(kind, 'null')
            using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
    end if;
end
$$;

alter table app.conversations alter column cost_usd type numeric(38, 10);
alter table app.usage_daily alter column cost_usd type numeric(38, 10);
alter table app.limit_state alter column month_used type numeric(38, 10);
alter table app.messages alter column cost_usd type numeric(38, 10);
alter table app.usage_events alter column cost_usd type numeric(38, 10);
alter table app.limit_reservations alter column cost_usd type numeric(38, 10);
