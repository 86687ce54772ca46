-- Signed callbacks from providers (payment notifications, telephony status): each tenant's
-- secret per provider, the log of callbacks received, and the caller kind they run as.
--
-- A callback carries no bearer token. The server takes the tenant from the path
-- (`POST /v1/hooks/{provider}/{tenant}`), reads that tenant's secret for that provider
-- through `app.provider_secret()` (as frontdesk_authenticator, outside any request
-- transaction, like `app.resolve_tenant()`), verifies the signature over the body's bytes,
-- and only then opens a request transaction as the role `frontdesk_callback` (created with
-- the other roles by crates/frontdesk-pg/src/roles.rs) with the settings
--   frontdesk.tenant_id           the tenant of the path
--   frontdesk.caller_kind         'callback' (the caller kind, also as a setting: a later
--                                 issue replaces the request roles by settings)
--   frontdesk.provider            the provider of the path ('test' for now)
--   frontdesk.secret_fingerprint  the fingerprint of the secret the signature verified with
-- and, instead of `app.assert_principal()`, calls `app.assert_callback()` (below).
--
-- Why a function of its own instead of a branch in `app.assert_principal()`: that function
-- belongs to migration 0001, and a migration never redefines an earlier migration's
-- function (tests/schema.rs checks that each function is created in one up script only).
-- `assert_principal()` keeps refusing the callback role ("role cannot make requests"), so
-- a callback context can never pass as a user's or a key's, and the callback preamble
-- calls its own check. When the roles become settings, both checks read the caller kind.
--
-- The callback role can do exactly one thing: insert a row into app.provider_callbacks for
-- the tenant and provider of its context. It holds no other grant on any table.

grant usage on schema app to frontdesk_callback;

-- ---------------------------------------------------------------------------------------
-- The provider of a callback's context (null in any other transaction).

create function app.current_provider() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('frontdesk.provider', true), '') $$;

-- ---------------------------------------------------------------------------------------
-- Provider secrets: one per tenant and provider, set and replaced by the tenant's admins,
-- never shown again. Request roles cannot SELECT the secret (column grants); the server
-- reads it only through `app.provider_secret()`. Like memberships and api_keys, the table
-- is read across the tenant boundary by SECURITY DEFINER functions outside any tenant
-- context (the signature is verified before the callback's transaction exists), so RLS is
-- enabled and not forced: its owner is exempt, the request roles are not
-- (`frontdesk migrate verify` lists it in OWNER_EXEMPT).

create table app.provider_secrets (
    tenant_id   uuid not null references app.tenants (id) on delete cascade,
    provider    text not null,
    secret      text not null,
    fingerprint text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint provider_secrets_pkey primary key (tenant_id, provider),
    -- The payments and telephony issues add their providers here (midtrans, stripe, twilio).
    constraint provider_secrets_provider_check check (provider in ('test')),
    constraint provider_secrets_secret_check check (length(secret) between 1 and 1000),
    constraint provider_secrets_fingerprint_check check (fingerprint ~ '^[0-9a-f]{16}$')
);
comment on column app.provider_secrets.secret is 'the signing secret the provider shares with the tenant; never returned, read only by app.provider_secret()';
comment on column app.provider_secrets.fingerprint is 'the first 16 hex digits of the SHA-256 of the secret: recognises a secret in lists, and pins the one a callback was verified with';

create trigger provider_secrets_touch before update on app.provider_secrets
    for each row execute function app.touch_updated_at();

alter table app.provider_secrets enable row level security;
create policy provider_secrets_select on app.provider_secrets for select to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy provider_secrets_insert on app.provider_secrets for insert to frontdesk_user
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy provider_secrets_update on app.provider_secrets for update to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin())
    with check (tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy provider_secrets_delete on app.provider_secrets for delete to frontdesk_user
    using (tenant_id = app.current_tenant() and app.is_tenant_admin());

-- Every column but the secret may be read; the secret may only be written.
grant select (tenant_id, provider, fingerprint, created_at, updated_at) on app.provider_secrets
    to frontdesk_user, frontdesk_operator;
grant insert (tenant_id, provider, secret, fingerprint) on app.provider_secrets
    to frontdesk_user, frontdesk_operator;
grant update (secret, fingerprint) on app.provider_secrets to frontdesk_user, frontdesk_operator;
grant delete on app.provider_secrets to frontdesk_user, frontdesk_operator;

-- The secret of a tenant's provider, with its fingerprint, for verifying a callback's
-- signature. Only the server's login role may call it, outside any request transaction.
create function app.provider_secret(p_tenant uuid, p_provider text)
    returns table (secret text, fingerprint text)
    language sql stable security definer
    set search_path = pg_catalog
    as $$
    select s.secret, s.fingerprint from app.provider_secrets s
    where s.tenant_id = p_tenant and s.provider = p_provider
$$;
revoke execute on function app.provider_secret(uuid, text) from public;
grant execute on function app.provider_secret(uuid, text) to frontdesk_authenticator;

-- ---------------------------------------------------------------------------------------
-- The database's check of a callback's context: the preamble of the callback caller kind
-- calls this instead of `app.assert_principal()`. Raises insufficient_privilege (hint
-- `frontdesk-context`, like assert_principal) unless the role is frontdesk_callback, the
-- caller kind is 'callback', a tenant and a provider are set and nothing of a user or a key
-- is, and the tenant has a secret for that provider with the fingerprint the server
-- verified the signature with (so a secret deleted or replaced meanwhile, on this server
-- or another, refuses the callback).

create function app.assert_callback() returns void
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
revoke execute on function app.assert_callback() from public;
grant execute on function app.assert_callback() to frontdesk_callback;

-- ---------------------------------------------------------------------------------------
-- The callbacks received: a fact, recorded once per delivery. A provider redelivers until
-- it gets a 2xx, so the same delivery (its external id, e.g. Standard Webhooks'
-- `webhook-id`) may arrive several times; the unique key keeps one row, and the server
-- answers the duplicate as it answered the first. Append-only.

create table app.provider_callbacks (
    tenant_id   uuid not null references app.tenants (id) on delete cascade,
    id          uuid not null,
    provider    text not null,
    external_id text not null,
    payload     jsonb not null,
    received_at timestamptz not null default now(),
    constraint provider_callbacks_pkey primary key (tenant_id, id),
    constraint provider_callbacks_delivery_key unique (tenant_id, provider, external_id),
    constraint provider_callbacks_provider_check check (provider in ('test')),
    constraint provider_callbacks_external_id_check check (length(external_id) between 1 and 255)
);
comment on column app.provider_callbacks.external_id is 'the provider''s id of the delivery (webhook-id): a redelivery is recorded once';

create trigger provider_callbacks_append_only before update or delete on app.provider_callbacks
    for each row execute function app.refuse_change();

alter table app.provider_callbacks enable row level security;
alter table app.provider_callbacks force row level security;
-- Staff (owners, admins, agents, keys) read the log; members see none.
create policy provider_callbacks_select on app.provider_callbacks for select
    to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant() and app.is_tenant_staff());
-- A callback records itself, for its own tenant and provider only.
create policy provider_callbacks_insert on app.provider_callbacks for insert to frontdesk_callback
    with check (tenant_id = app.current_tenant() and provider = app.current_provider());

grant select on app.provider_callbacks to frontdesk_user, frontdesk_service, frontdesk_operator;
-- INSERT … ON CONFLICT DO NOTHING (without a conflict target, which would need SELECT).
grant insert (tenant_id, id, provider, external_id, payload) on app.provider_callbacks
    to frontdesk_callback;
