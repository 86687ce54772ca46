-- Back to the request roles of 0001–0007: the functions as they were, the policies and
-- grants on the old roles (in their original order), and no caller kind.

-- Restore the functions 0008 replaced or dropped, exactly as their migrations made them.
drop function app.forget_tenant_lookups(uuid);
drop function app.claim_key_hash(uuid, bytea);
drop function app.claim_slug(uuid, text);
drop function app.create_tenant(uuid, jsonb, uuid);
drop function app.user_tenants(uuid, bigint);
drop function app.tenant_members(uuid, bigint, uuid);
create or replace function app.assert_principal() returns void
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
create or replace function app.provision_user(p_id uuid, p_email text, p_name text) returns void
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
create or replace function app.messages_count_in_conversation() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    update app.conversations c
       set message_count = c.message_count + 1,
           prompt_tokens = c.prompt_tokens + coalesce(new.prompt_tokens, 0),
           completion_tokens = c.completion_tokens + coalesce(new.completion_tokens, 0),
           cost_usd = c.cost_usd + coalesce(new.cost_usd, 0),
           last_activity_at = greatest(c.last_activity_at, new.created_at),
           updated_at = now()
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
    return new;
end
$$;
create or replace function app.assert_tenant_admin() returns uuid
    language plpgsql stable
    as $$
begin
    if app.current_tenant() is null or not (app.is_tenant_admin() or current_setting('role') = 'frontdesk_operator') then
        raise exception 'webhooks are managed by the tenant''s owners and admins'
            using errcode = 'insufficient_privilege';
    end if;
    return app.current_tenant();
end
$$;
create or replace function app.assert_callback() returns void
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.current_tenant();
    p text := app.current_provider();
    f text := nullif(current_setting('frontdesk.secret_fingerprint', true), '');
begin
    if current_setting('role') <> 'frontdesk_callback'
       or current_setting('frontdesk.caller_kind', true) is distinct from 'callback' then
        raise exception 'only the callback caller kind makes callbacks'
            using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
    end if;
    if t is null or p is null or f is null
       or app.current_user_id() is not null or app.current_key_id() is not null
       or app.current_member_role() is not null or app.current_key_scope() is not null then
        raise exception 'a callback names exactly a tenant, a provider and its secret'
            using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
    end if;
    if not exists (select 1 from app.provider_secrets s
                   where s.tenant_id = t and s.provider = p and s.fingerprint = f) then
        raise exception 'tenant % has no such secret for provider %', t, p
            using errcode = 'insufficient_privilege', hint = 'frontdesk-context';
    end if;
end
$$;
create or replace function app.provider_secret(p_tenant uuid, p_provider text)
    returns table (secret text, fingerprint text)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
begin
    return query
    select s.secret, s.fingerprint from app.provider_secrets s
    where s.tenant_id = p_tenant and s.provider = p_provider;
end
$$;

-- The lookups' triggers of 0007 (created after the functions they call are restored).
-- The tenant's slug, claimed in app.tenant_slugs by the statement that writes the tenant.
create function app.tenants_slug() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if tg_op = 'INSERT' then
        insert into app.tenant_slugs (slug, tenant) values (new.slug, new.id);
    elsif tg_op = 'UPDATE' then
        update app.tenant_slugs s set slug = new.slug where s.tenant = old.id;
    else
        delete from app.tenant_slugs s where s.tenant = old.id;
    end if;
    return null;
end
$$;
create trigger tenants_slug after insert or delete or update of slug on app.tenants
    for each row execute function app.tenants_slug();

-- The key's hash, recorded in app.api_key_hashes by the statement that writes the key.
create function app.api_keys_hash() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if tg_op in ('UPDATE', 'DELETE') then
        delete from app.api_key_hashes h where h.tenant = old.tenant_id and h.key_id = old.id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        insert into app.api_key_hashes (secret_hash, tenant, key_id) values (new.secret_hash, new.tenant_id, new.id);
    end if;
    return null;
end
$$;
create trigger api_keys_hash after insert or delete or update of tenant_id, id, secret_hash on app.api_keys
    for each row execute function app.api_keys_hash();
comment on table app.tenant_slugs is 'global: every tenant''s slug, unique across tenants (a reference table on Citus); kept by the tenants_slug trigger, read by app.resolve_tenant';
comment on table app.api_key_hashes is 'global: the SHA-256 of every API key''s secret, unique across tenants (a reference table on Citus); kept by the api_keys_hash trigger, read by app.authenticate_key';
drop function app.take_slug(uuid, text);

-- ---------------------------------------------------------------------------------------
-- Policies back to the request roles.
alter policy api_keys_insert on app.api_keys to frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy api_keys_select on app.api_keys to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy api_keys_update on app.api_keys to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()))
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy assistants_delete on app.assistants to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy assistants_insert on app.assistants to frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy assistants_select on app.assistants to frontdesk_service, frontdesk_user
    using ((tenant_id = app.current_tenant()));
alter policy assistants_update on app.assistants to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()))
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy contacts_delete on app.contacts to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write()));
alter policy contacts_insert on app.contacts to frontdesk_service, frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write()));
alter policy contacts_select on app.contacts to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff()));
alter policy contacts_update on app.contacts to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write()))
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write()));
alter policy conversation_transitions_select on app.conversation_transitions to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (owner_user_id = app.current_user_id()))));
alter policy conversations_delete on app.conversations to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy conversations_insert on app.conversations to frontdesk_service, frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy conversations_select on app.conversations to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy conversations_update on app.conversations to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))))
    with check (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy events_select on app.events to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff()));
alter policy feedback_delete on app.feedback to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id()))));
alter policy feedback_insert on app.feedback to frontdesk_service, frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id()))));
alter policy feedback_select on app.feedback to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy feedback_update on app.feedback to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id()))))
    with check (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id()))));
alter policy feedback_daily_select on app.feedback_daily to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy flows_insert on app.flows to frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy flows_select on app.flows to frontdesk_service, frontdesk_user
    using ((tenant_id = app.current_tenant()));
alter policy idempotency_keys_own on app.idempotency_keys to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (NOT (user_id IS DISTINCT FROM app.current_user_id())) AND (NOT (key_id IS DISTINCT FROM app.current_key_id()))))
    with check (((tenant_id = app.current_tenant()) AND (NOT (user_id IS DISTINCT FROM app.current_user_id())) AND (NOT (key_id IS DISTINCT FROM app.current_key_id()))));
alter policy limit_hits_select on app.limit_hits to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff()));
alter policy limit_reservations_select on app.limit_reservations to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (actor_user_id = app.current_user_id()))));
alter policy limit_state_select on app.limit_state to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff()));
alter policy memberships_delete on app.memberships to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text))));
alter policy memberships_insert on app.memberships to frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text))));
alter policy memberships_select on app.memberships to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy memberships_update on app.memberships to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text))))
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text))));
alter policy messages_insert on app.messages to frontdesk_service, frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (owner_user_id = app.current_user_id()))));
alter policy messages_redact on app.messages to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()))
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy messages_select on app.messages to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (owner_user_id = app.current_user_id()))));
alter policy provider_callbacks_insert on app.provider_callbacks to frontdesk_callback
    with check (((tenant_id = app.current_tenant()) AND (provider = app.current_provider())));
alter policy provider_callbacks_select on app.provider_callbacks to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff()));
alter policy provider_secrets_delete on app.provider_secrets to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy provider_secrets_insert on app.provider_secrets to frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy provider_secrets_select on app.provider_secrets to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy provider_secrets_update on app.provider_secrets to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()))
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy tenant_model_prices_insert on app.tenant_model_prices to frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy tenant_model_prices_select on app.tenant_model_prices to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_staff()));
alter policy tenants_delete on app.tenants to frontdesk_user
    using (((id = app.current_tenant()) AND (app.current_member_role() = 'owner'::text)));
alter policy tenants_select on app.tenants to frontdesk_service, frontdesk_user
    using ((id = app.current_tenant()));
alter policy tenants_update on app.tenants to frontdesk_user
    using (((id = app.current_tenant()) AND app.is_tenant_admin()))
    with check (((id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy usage_daily_select on app.usage_daily to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy usage_events_insert on app.usage_events to frontdesk_service, frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write()));
alter policy usage_events_select on app.usage_events to frontdesk_service, frontdesk_user
    using (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id()))));
alter policy users_self on app.users to frontdesk_user
    using ((id = app.current_user_id()));
alter policy webhook_attempts_select on app.webhook_attempts to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy webhook_deliveries_select on app.webhook_deliveries to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy webhook_endpoints_delete on app.webhook_endpoints to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy webhook_endpoints_insert on app.webhook_endpoints to frontdesk_user
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy webhook_endpoints_select on app.webhook_endpoints to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy webhook_endpoints_update on app.webhook_endpoints to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()))
    with check (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));
alter policy webhook_queue_select on app.webhook_queue to frontdesk_user
    using (((tenant_id = app.current_tenant()) AND app.is_tenant_admin()));

-- Grants back, in their original order (ACL order is part of the catalog).
revoke all on app.api_keys from frontdesk_user, frontdesk_operator, frontdesk_app;
grant insert, select on app.api_keys to frontdesk_user;
grant insert, select, update, delete on app.api_keys to frontdesk_operator;
revoke all on app.assistants from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select, update, delete on app.assistants to frontdesk_user;
grant select on app.assistants to frontdesk_service;
grant insert, select, update, delete on app.assistants to frontdesk_operator;
revoke all on app.builtin_flows from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.builtin_flows to frontdesk_user;
grant select on app.builtin_flows to frontdesk_service;
grant select on app.builtin_flows to frontdesk_operator;
revoke all on app.contacts from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select, update, delete on app.contacts to frontdesk_user;
grant insert, select, update, delete on app.contacts to frontdesk_service;
grant insert, select, update, delete on app.contacts to frontdesk_operator;
revoke all on app.conversation_transitions from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.conversation_transitions to frontdesk_user;
grant select on app.conversation_transitions to frontdesk_service;
grant insert, select, update, delete on app.conversation_transitions to frontdesk_operator;
revoke all on app.conversations from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select, delete on app.conversations to frontdesk_user;
grant insert, select, delete on app.conversations to frontdesk_service;
grant insert, select, update, delete on app.conversations to frontdesk_operator;
revoke all on app.events from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.events to frontdesk_user;
grant select on app.events to frontdesk_service;
grant insert, select, update, delete on app.events to frontdesk_operator;
revoke all on app.feedback from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select, delete on app.feedback to frontdesk_user;
grant insert, select, delete on app.feedback to frontdesk_service;
grant insert, select, update, delete on app.feedback to frontdesk_operator;
revoke all on app.feedback_daily from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.feedback_daily to frontdesk_user;
grant select on app.feedback_daily to frontdesk_service;
grant insert, select, update, delete on app.feedback_daily to frontdesk_operator;
revoke all on app.flows from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select on app.flows to frontdesk_user;
grant select on app.flows to frontdesk_service;
grant insert, select, update, delete on app.flows to frontdesk_operator;
revoke all on app.idempotency_keys from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select, delete on app.idempotency_keys to frontdesk_user;
grant insert, select, delete on app.idempotency_keys to frontdesk_service;
grant insert, select, update, delete on app.idempotency_keys to frontdesk_operator;
revoke all on app.limit_hits from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.limit_hits to frontdesk_user;
grant select on app.limit_hits to frontdesk_service;
grant insert, select, update, delete on app.limit_hits to frontdesk_operator;
revoke all on app.limit_reservations from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.limit_reservations to frontdesk_user;
grant select on app.limit_reservations to frontdesk_service;
grant insert, select, update, delete on app.limit_reservations to frontdesk_operator;
revoke all on app.limit_state from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.limit_state to frontdesk_user;
grant select on app.limit_state to frontdesk_service;
grant insert, select, update, delete on app.limit_state to frontdesk_operator;
revoke all on app.memberships from frontdesk_user, frontdesk_operator, frontdesk_app;
grant insert, select, update, delete on app.memberships to frontdesk_user;
grant insert, select, update, delete on app.memberships to frontdesk_operator;
revoke all on app.messages from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select on app.messages to frontdesk_user;
grant insert, select on app.messages to frontdesk_service;
grant insert, select, update, delete on app.messages to frontdesk_operator;
revoke all on app.model_prices from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.model_prices to frontdesk_user;
grant select on app.model_prices to frontdesk_service;
grant insert, select, delete on app.model_prices to frontdesk_operator;
revoke all on app.provider_callbacks from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.provider_callbacks to frontdesk_user;
grant select on app.provider_callbacks to frontdesk_service;
grant select on app.provider_callbacks to frontdesk_operator;
revoke all on app.provider_secrets from frontdesk_user, frontdesk_operator, frontdesk_app;
grant delete on app.provider_secrets to frontdesk_user;
grant delete on app.provider_secrets to frontdesk_operator;
revoke all on app.tenant_model_prices from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select on app.tenant_model_prices to frontdesk_user;
grant select on app.tenant_model_prices to frontdesk_service;
grant insert, select, delete on app.tenant_model_prices to frontdesk_operator;
revoke all on app.tenants from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select, update, delete on app.tenants to frontdesk_user;
grant select on app.tenants to frontdesk_service;
grant insert, select, update, delete on app.tenants to frontdesk_operator;
revoke all on app.usage_daily from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant select on app.usage_daily to frontdesk_user;
grant select on app.usage_daily to frontdesk_service;
grant insert, select, update, delete on app.usage_daily to frontdesk_operator;
revoke all on app.usage_events from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant insert, select on app.usage_events to frontdesk_user;
grant insert, select on app.usage_events to frontdesk_service;
grant insert, select, update, delete on app.usage_events to frontdesk_operator;
revoke all on app.users from frontdesk_user, frontdesk_operator, frontdesk_app;
grant select on app.users to frontdesk_user;
grant insert, select, update, delete on app.users to frontdesk_operator;
revoke all on app.webhook_attempts from frontdesk_user, frontdesk_operator, frontdesk_app;
grant select on app.webhook_attempts to frontdesk_user;
grant insert, select, update, delete on app.webhook_attempts to frontdesk_operator;
revoke all on app.webhook_deliveries from frontdesk_user, frontdesk_operator, frontdesk_app;
grant select on app.webhook_deliveries to frontdesk_user;
grant insert, select, update, delete on app.webhook_deliveries to frontdesk_operator;
revoke all on app.webhook_endpoints from frontdesk_user, frontdesk_operator, frontdesk_app;
grant delete on app.webhook_endpoints to frontdesk_user;
grant insert, select, update, delete on app.webhook_endpoints to frontdesk_operator;
revoke all on app.webhook_queue from frontdesk_user, frontdesk_operator, frontdesk_app;
grant select on app.webhook_queue to frontdesk_user;
grant insert, select, update, delete on app.webhook_queue to frontdesk_operator;
revoke all (name, revoked_at) on app.api_keys from frontdesk_user, frontdesk_app;
grant update (name, revoked_at) on app.api_keys to frontdesk_user;
revoke all (contact_id, channel, title, state, context, parsed_intent, answered_questions, pending_questions, selected_kb_ids, active_task_plan_id, assignee_id, handoff_reason, handoff_at, archived, metadata) on app.conversations from frontdesk_user, frontdesk_service, frontdesk_app;
grant update (contact_id, channel, title, state, context, parsed_intent, answered_questions, pending_questions, selected_kb_ids, active_task_plan_id, assignee_id, handoff_reason, handoff_at, archived, metadata) on app.conversations to frontdesk_user;
grant update (contact_id, channel, title, state, context, parsed_intent, answered_questions, pending_questions, selected_kb_ids, active_task_plan_id, assignee_id, handoff_reason, handoff_at, archived, metadata) on app.conversations to frontdesk_service;
revoke all (rating, comment) on app.feedback from frontdesk_user, frontdesk_service, frontdesk_app;
grant update (rating, comment) on app.feedback to frontdesk_user;
grant update (rating, comment) on app.feedback to frontdesk_service;
revoke all (content, redacted_at, redacted_by) on app.messages from frontdesk_user, frontdesk_app;
grant update (content, redacted_at, redacted_by) on app.messages to frontdesk_user;
revoke all (tenant_id, id, provider, external_id, payload) on app.provider_callbacks from frontdesk_callback, frontdesk_app;
grant insert (tenant_id, id, provider, external_id, payload) on app.provider_callbacks to frontdesk_callback;
revoke all (tenant_id, provider) on app.provider_secrets from frontdesk_user, frontdesk_operator, frontdesk_app;
grant insert (tenant_id, provider), select (tenant_id, provider) on app.provider_secrets to frontdesk_user;
grant insert (tenant_id, provider), select (tenant_id, provider) on app.provider_secrets to frontdesk_operator;
revoke all (secret) on app.provider_secrets from frontdesk_user, frontdesk_operator, frontdesk_app;
grant insert (secret), update (secret) on app.provider_secrets to frontdesk_user;
grant insert (secret), update (secret) on app.provider_secrets to frontdesk_operator;
revoke all (fingerprint) on app.provider_secrets from frontdesk_user, frontdesk_operator, frontdesk_app;
grant insert (fingerprint), select (fingerprint), update (fingerprint) on app.provider_secrets to frontdesk_user;
grant insert (fingerprint), select (fingerprint), update (fingerprint) on app.provider_secrets to frontdesk_operator;
revoke all (created_at, updated_at) on app.provider_secrets from frontdesk_user, frontdesk_operator, frontdesk_app;
grant select (created_at, updated_at) on app.provider_secrets to frontdesk_user;
grant select (created_at, updated_at) on app.provider_secrets to frontdesk_operator;
revoke all (tenant_id, id) on app.webhook_endpoints from frontdesk_user, frontdesk_app;
grant insert (tenant_id, id), select (tenant_id, id) on app.webhook_endpoints to frontdesk_user;
revoke all (url, description, event_types, enabled) on app.webhook_endpoints from frontdesk_user, frontdesk_app;
grant insert (url, description, event_types, enabled), select (url, description, event_types, enabled), update (url, description, event_types, enabled) on app.webhook_endpoints to frontdesk_user;
revoke all (secret) on app.webhook_endpoints from frontdesk_user, frontdesk_app;
grant insert (secret) on app.webhook_endpoints to frontdesk_user;
revoke all (previous_secret_until, failing_since, disabled_at, disabled_reason, created_at, updated_at) on app.webhook_endpoints from frontdesk_user, frontdesk_app;
grant select (previous_secret_until, failing_since, disabled_at, disabled_reason, created_at, updated_at) on app.webhook_endpoints to frontdesk_user;
revoke execute on function app.assert_callback() from frontdesk_callback, frontdesk_app;
grant execute on function app.assert_callback() to frontdesk_callback;
revoke execute on function app.assert_principal() from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.assert_principal() to frontdesk_user;
grant execute on function app.assert_principal() to frontdesk_service;
grant execute on function app.assert_principal() to frontdesk_operator;
revoke execute on function app.authenticate_key(bytea) from frontdesk_authenticator, frontdesk_app;
grant execute on function app.authenticate_key(bytea) to frontdesk_authenticator;
revoke execute on function app.can_write() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.can_write() to public;
grant execute on function app.can_write() to frontdesk_owner;
grant execute on function app.can_write() to frontdesk_user;
grant execute on function app.can_write() to frontdesk_service;
grant execute on function app.can_write() to frontdesk_operator;
revoke execute on function app.cancel_reservation(uuid) from frontdesk_user, frontdesk_service, frontdesk_app;
grant execute on function app.cancel_reservation(uuid) to frontdesk_user;
grant execute on function app.cancel_reservation(uuid) to frontdesk_service;
revoke execute on function app.create_tenant(uuid,jsonb,uuid) from frontdesk_user, frontdesk_operator, frontdesk_app;
grant execute on function app.create_tenant(uuid,jsonb,uuid) to frontdesk_user;
grant execute on function app.create_tenant(uuid,jsonb,uuid) to frontdesk_operator;
revoke execute on function app.current_key_id() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.current_key_id() to public;
grant execute on function app.current_key_id() to frontdesk_owner;
grant execute on function app.current_key_id() to frontdesk_user;
grant execute on function app.current_key_id() to frontdesk_service;
grant execute on function app.current_key_id() to frontdesk_operator;
revoke execute on function app.current_key_scope() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.current_key_scope() to public;
grant execute on function app.current_key_scope() to frontdesk_owner;
grant execute on function app.current_key_scope() to frontdesk_user;
grant execute on function app.current_key_scope() to frontdesk_service;
grant execute on function app.current_key_scope() to frontdesk_operator;
revoke execute on function app.current_member_role() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.current_member_role() to public;
grant execute on function app.current_member_role() to frontdesk_owner;
grant execute on function app.current_member_role() to frontdesk_user;
grant execute on function app.current_member_role() to frontdesk_service;
grant execute on function app.current_member_role() to frontdesk_operator;
revoke execute on function app.current_tenant() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.current_tenant() to public;
grant execute on function app.current_tenant() to frontdesk_owner;
grant execute on function app.current_tenant() to frontdesk_user;
grant execute on function app.current_tenant() to frontdesk_service;
grant execute on function app.current_tenant() to frontdesk_operator;
revoke execute on function app.current_user_id() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.current_user_id() to public;
grant execute on function app.current_user_id() to frontdesk_owner;
grant execute on function app.current_user_id() to frontdesk_user;
grant execute on function app.current_user_id() to frontdesk_service;
grant execute on function app.current_user_id() to frontdesk_operator;
revoke execute on function app.flow_definition(uuid,text) from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.flow_definition(uuid,text) to public;
grant execute on function app.flow_definition(uuid,text) to frontdesk_owner;
grant execute on function app.flow_definition(uuid,text) to frontdesk_user;
grant execute on function app.flow_definition(uuid,text) to frontdesk_service;
grant execute on function app.flow_definition(uuid,text) to frontdesk_operator;
revoke execute on function app.is_search_language(text) from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.is_search_language(text) to public;
grant execute on function app.is_search_language(text) to frontdesk_owner;
grant execute on function app.is_search_language(text) to frontdesk_user;
grant execute on function app.is_search_language(text) to frontdesk_service;
grant execute on function app.is_search_language(text) to frontdesk_operator;
revoke execute on function app.is_tenant_admin() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.is_tenant_admin() to public;
grant execute on function app.is_tenant_admin() to frontdesk_owner;
grant execute on function app.is_tenant_admin() to frontdesk_user;
grant execute on function app.is_tenant_admin() to frontdesk_service;
grant execute on function app.is_tenant_admin() to frontdesk_operator;
revoke execute on function app.is_tenant_staff() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.is_tenant_staff() to public;
grant execute on function app.is_tenant_staff() to frontdesk_owner;
grant execute on function app.is_tenant_staff() to frontdesk_user;
grant execute on function app.is_tenant_staff() to frontdesk_service;
grant execute on function app.is_tenant_staff() to frontdesk_operator;
revoke execute on function app.limit_status() from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.limit_status() to frontdesk_user;
grant execute on function app.limit_status() to frontdesk_service;
grant execute on function app.limit_status() to frontdesk_operator;
revoke execute on function app.message_document(text,text) from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.message_document(text,text) to public;
grant execute on function app.message_document(text,text) to frontdesk_owner;
grant execute on function app.message_document(text,text) to frontdesk_user;
grant execute on function app.message_document(text,text) to frontdesk_service;
grant execute on function app.message_document(text,text) to frontdesk_operator;
revoke execute on function app.note_limit_reached(text,timestamp with time zone,jsonb) from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.note_limit_reached(text,timestamp with time zone,jsonb) to frontdesk_user;
grant execute on function app.note_limit_reached(text,timestamp with time zone,jsonb) to frontdesk_service;
grant execute on function app.note_limit_reached(text,timestamp with time zone,jsonb) to frontdesk_operator;
revoke execute on function app.price_at(uuid,text,text,timestamp with time zone) from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.price_at(uuid,text,text,timestamp with time zone) to public;
grant execute on function app.price_at(uuid,text,text,timestamp with time zone) to frontdesk_owner;
grant execute on function app.price_at(uuid,text,text,timestamp with time zone) to frontdesk_user;
grant execute on function app.price_at(uuid,text,text,timestamp with time zone) to frontdesk_service;
grant execute on function app.price_at(uuid,text,text,timestamp with time zone) to frontdesk_operator;
revoke execute on function app.provider_secret(uuid,text) from frontdesk_authenticator, frontdesk_app;
grant execute on function app.provider_secret(uuid,text) to frontdesk_authenticator;
revoke execute on function app.provision_user(uuid,text,text) from frontdesk_user, frontdesk_operator, frontdesk_app;
grant execute on function app.provision_user(uuid,text,text) to frontdesk_user;
grant execute on function app.provision_user(uuid,text,text) to frontdesk_operator;
revoke execute on function app.reserve_limits(uuid,bigint,numeric,text,integer) from frontdesk_user, frontdesk_service, frontdesk_app;
grant execute on function app.reserve_limits(uuid,bigint,numeric,text,integer) to frontdesk_user;
grant execute on function app.reserve_limits(uuid,bigint,numeric,text,integer) to frontdesk_service;
revoke execute on function app.resolve_tenant(text,uuid) from frontdesk_authenticator, frontdesk_app;
grant execute on function app.resolve_tenant(text,uuid) to frontdesk_authenticator;
revoke execute on function app.retry_delivery(uuid) from frontdesk_user, frontdesk_operator, frontdesk_app;
grant execute on function app.retry_delivery(uuid) to frontdesk_user;
grant execute on function app.retry_delivery(uuid) to frontdesk_operator;
revoke execute on function app.rotate_webhook_secret(uuid,text,interval) from frontdesk_user, frontdesk_operator, frontdesk_app;
grant execute on function app.rotate_webhook_secret(uuid,text,interval) to frontdesk_user;
grant execute on function app.rotate_webhook_secret(uuid,text,interval) to frontdesk_operator;
revoke execute on function app.send_test_event(uuid) from frontdesk_user, frontdesk_operator, frontdesk_app;
grant execute on function app.send_test_event(uuid) to frontdesk_user;
grant execute on function app.send_test_event(uuid) to frontdesk_operator;
revoke execute on function app.tenant_members(uuid,bigint,uuid) from frontdesk_user, frontdesk_operator, frontdesk_app;
grant execute on function app.tenant_members(uuid,bigint,uuid) to frontdesk_user;
grant execute on function app.tenant_members(uuid,bigint,uuid) to frontdesk_operator;
revoke execute on function app.touch_user(uuid,text,text) from frontdesk_authenticator, frontdesk_app;
grant execute on function app.touch_user(uuid,text,text) to frontdesk_authenticator;
revoke execute on function app.user_tenants(uuid,bigint) from frontdesk_user, frontdesk_app;
grant execute on function app.user_tenants(uuid,bigint) to frontdesk_user;
revoke execute on function app.uuid_v7() from public, frontdesk_owner, frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_app;
grant execute on function app.uuid_v7() to public;
grant execute on function app.uuid_v7() to frontdesk_owner;
grant execute on function app.uuid_v7() to frontdesk_user;
grant execute on function app.uuid_v7() to frontdesk_service;
grant execute on function app.uuid_v7() to frontdesk_operator;
revoke all on schema app from frontdesk_user, frontdesk_service, frontdesk_operator, frontdesk_authenticator, frontdesk_callback, frontdesk_app;
grant usage on schema app to frontdesk_user;
grant usage on schema app to frontdesk_service;
grant usage on schema app to frontdesk_operator;
grant usage on schema app to frontdesk_authenticator;
grant usage on schema app to frontdesk_callback;

drop function app.caller_kind();
