-- Back to 0009: the cost columns at their former sizes (fails while a stored total no
-- longer fits them), app.assert_principal as 0008 made it, app.resolve_tenant as 0009 made
-- it (with 0008's grants), and no access version.
alter table app.limit_reservations alter column cost_usd type numeric(20, 10);
alter table app.usage_events alter column cost_usd type numeric(20, 10);
alter table app.messages alter column cost_usd type numeric(20, 10);
alter table app.limit_state alter column month_used type numeric(24, 10);
alter table app.usage_daily alter column cost_usd type numeric(24, 10);
alter table app.conversations alter column cost_usd type numeric(20, 10);

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
begin
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

drop function app.tenant_by_slug(text, uuid);
drop function app.tenant_by_id(uuid, uuid);
create or replace function app.resolve_tenant(p_ref text, p_user uuid)
    returns table (tenant_id uuid, member_role text, is_active boolean)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    found_id uuid;
    active boolean;
    role_ text;
    by_slug boolean := p_ref !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
begin
    if by_slug then
        select s.tenant into found_id from app.tenant_slugs s where s.slug = p_ref;
    else
        found_id := p_ref::uuid;
    end if;
    if found_id is null then
        return;
    end if;
    -- A slug resolves only while its tenant still holds it (a row left by a tenant since
    -- deleted or renamed outside app.claim_slug resolves to nothing). Two plain reads by
    -- the tenant, not an outer join: Citus cannot always plan that one.
    select t.is_active into active from app.tenants t
     where t.id = found_id and (not by_slug or t.slug = p_ref);
    if not found then
        return;
    end if;
    if p_user is not null then
        select m.role into role_ from app.memberships m
         where m.tenant_id = found_id and m.user_id = p_user;
    end if;
    return query select found_id, role_, active;
end
$$;
revoke execute on function app.resolve_tenant(text, uuid) from public;
grant execute on function app.resolve_tenant(text, uuid) to frontdesk_app;

drop trigger tenants_version on app.tenants;
drop function app.tenants_access_version();
alter table app.tenants drop column access_version;
