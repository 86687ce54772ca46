-- 0015_invitations: inviting people by email, and finding a user by the email their own
-- token carried (issue 13, item 5).
--
-- An invitation belongs to a tenant: an email, the role the invitee will get, and the
-- SHA-256 of a token shown once at creation (like an API key's secret). It is accepted by
-- a signed-in user whose token's email equals the invitation's (case-insensitively),
-- within 7 days, once. The invitee is not a member yet, so no tenant context can exist
-- for them: acceptance goes through app.accept_invitation (SECURITY DEFINER), which
-- checks the token, the email, the expiry and the state, and creates the membership. The
-- accept link names the tenant and the invitation (`/v1/tenants/{tenant}/invitations/{id}/accept`,
-- the token in the body), so the lookup is by the table's own key on the tenant's shard
-- and needs no global table of token hashes.
--
-- Users get `email_verified`: whether their email came from their own token (and the
-- identity provider did not mark it unverified; the server drops such an email before it
-- reaches app.touch_user), rather than from an admin who added them before they signed
-- in. Only such emails are found by app.user_by_email (`POST …/members` with an email):
-- an admin of any tenant can give a not-yet-signed-in user any email, and that must not
-- let them be found as someone else.

-- ---------------------------------------------------------------------------------------
-- Users: where their email came from.

alter table app.users add column email_verified boolean not null default false;
comment on column app.users.email_verified is
    'the email came from the user''s own token (not marked unverified by the identity provider), not from an admin adding them';
create index users_verified_email_idx on app.users (lower(email)) where email_verified;

-- replaces app.touch_user (records that the email came from the user's own token)
create or replace function app.touch_user(p_id uuid, p_email text, p_name text) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    seen timestamptz := now();
begin
    insert into app.users as u (id, email, name, last_active_at, email_verified)
    values (p_id, p_email, p_name, seen, p_email is not null)
    on conflict (id) do update
        set email = coalesce(excluded.email, u.email),
            name = coalesce(excluded.name, u.name),
            last_active_at = excluded.last_active_at,
            email_verified = excluded.email_verified or u.email_verified;
end
$$;

-- The user who signed in with this email (their own token's, case-insensitively): their
-- id, and how many users have it (the caller refuses anything but exactly one). For the
-- tenant's owners and admins adding a member, and the operator.
create function app.user_by_email(p_email text)
    returns table (user_id uuid, matches bigint)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
begin
    if not (app.caller_kind() = 'operator'
            or (app.caller_kind() = 'user' and app.current_tenant() is not null and app.is_tenant_admin())) then
        raise exception 'only admins add members' using errcode = 'insufficient_privilege';
    end if;
    return query
    select min(u.id::text)::uuid, count(*)
      from app.users u
     where u.email_verified and lower(u.email) = lower(p_email);
end
$$;
revoke execute on function app.user_by_email(text) from public;
grant execute on function app.user_by_email(text) to frontdesk_app, frontdesk_operator;

-- ---------------------------------------------------------------------------------------
-- Invitations.

create table app.invitations (
    tenant_id   uuid not null references app.tenants (id) on delete cascade,
    id          uuid not null,
    email       text not null,
    role        text not null,
    token_hash  bytea not null,
    created_by  uuid references app.users (id) on delete set null,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null default now() + interval '7 days',
    accepted_at timestamptz,
    accepted_by uuid references app.users (id) on delete set null,
    revoked_at  timestamptz,
    constraint invitations_pkey primary key (tenant_id, id),
    constraint invitations_token_hash_key unique (tenant_id, token_hash),
    constraint invitations_token_hash_check check (length(token_hash) = 32),
    constraint invitations_email_check
        check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' and length(email) <= 320),
    constraint invitations_role_check check (role in ('owner', 'admin', 'agent', 'member')),
    constraint invitations_expires_at_check check (expires_at > created_at),
    -- Accepted or revoked, never both; an acceptance has its time (its user may be deleted since).
    constraint invitations_state_check check (accepted_at is null or revoked_at is null),
    constraint invitations_accepted_check check (accepted_by is null or accepted_at is not null)
);
create index invitations_created_by_idx on app.invitations (created_by) where created_by is not null;
create index invitations_accepted_by_idx on app.invitations (accepted_by) where accepted_by is not null;
comment on table app.invitations is
    'invitations to join a tenant by email; accepted through app.accept_invitation by the signed-in user with that email';
comment on column app.invitations.token_hash is 'SHA-256 of the token; the token itself is shown once, at creation, and never stored';
comment on column app.invitations.email is 'compared case-insensitively with the email of the accepting user''s token';

alter table app.invitations enable row level security;
alter table app.invitations force row level security;
-- Owners and admins see and create the tenant's invitations; only an owner invites an
-- owner (as for members). A request's new invitation is pending, made by the caller and
-- lasts exactly 7 days.
create policy invitations_select on app.invitations for select to frontdesk_app
    using (app.caller_kind() = 'user' and tenant_id = app.current_tenant() and app.is_tenant_admin());
create policy invitations_insert on app.invitations for insert to frontdesk_app
    with check (app.caller_kind() = 'user' and tenant_id = app.current_tenant() and app.is_tenant_admin()
                and (role <> 'owner' or app.current_member_role() = 'owner')
                and created_by = app.current_user_id()
                and expires_at = created_at + interval '7 days'
                and accepted_at is null and accepted_by is null and revoked_at is null);
-- Revoking (the only column a request may update): as for members, only an owner revokes
-- an owner's invitation.
create policy invitations_update on app.invitations for update to frontdesk_app
    using (app.caller_kind() = 'user' and tenant_id = app.current_tenant() and app.is_tenant_admin()
           and (role <> 'owner' or app.current_member_role() = 'owner'))
    with check (app.caller_kind() = 'user' and tenant_id = app.current_tenant() and app.is_tenant_admin()
                and (role <> 'owner' or app.current_member_role() = 'owner'));
-- app.accept_invitation reads and updates an invitation as the owner, for a signed-in
-- user whose request names no tenant (they are not a member yet); the function itself
-- finds the row by its tenant, id and token hash.
create policy invitations_accept_select on app.invitations for select to frontdesk_owner
    using (app.caller_kind() = 'user' and app.current_tenant() is null and app.current_user_id() is not null);
create policy invitations_accept_update on app.invitations for update to frontdesk_owner
    using (app.caller_kind() = 'user' and app.current_tenant() is null and app.current_user_id() is not null)
    with check (app.caller_kind() = 'user' and app.current_tenant() is null
                and accepted_by = app.current_user_id());

grant select, insert on app.invitations to frontdesk_app;
grant update (revoked_at) on app.invitations to frontdesk_app;
grant select, insert, update, delete on app.invitations to frontdesk_operator;

-- Accept invitation `p_id` of tenant `p_tenant` presenting a token that hashes to
-- `p_token_hash`, as the signed-in user of the request, whose token's email is `p_email`
-- (the server passes it only when the identity provider did not mark it unverified).
-- Returns the outcome and, when accepted, the new membership:
--   accepted        the membership was created and the invitation marked accepted
--   not_found       no such invitation, or the token is not its token
--   wrong_email     the user's email is not the invitation's (or the user's token has none)
--   expired | revoked | used
--   already_member  the user is already a member of the tenant (nothing changes)
-- Anything but `accepted` changes nothing. The invitation's row is locked first, so
-- concurrent acceptances of one invitation accept it once.
create function app.accept_invitation(p_tenant uuid, p_id uuid, p_token_hash bytea, p_email text)
    returns table (outcome text, role text, created_at timestamptz, updated_at timestamptz,
                   expires_at timestamptz)
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    me uuid := app.current_user_id();
    now_ timestamptz := now();
    inv_hash bytea;
    inv_email text;
    inv_role text;
    inv_expires timestamptz;
    inv_accepted timestamptz;
    inv_revoked timestamptz;
    joined_at timestamptz;
    changed_at timestamptz;
begin
    if app.caller_kind() is distinct from 'user' or me is null or app.current_tenant() is not null then
        raise exception 'invitations are accepted by a signed-in user, outside any tenant''s context'
            using errcode = 'insufficient_privilege';
    end if;
    select i.token_hash, i.email, i.role, i.expires_at, i.accepted_at, i.revoked_at
      into inv_hash, inv_email, inv_role, inv_expires, inv_accepted, inv_revoked
      from app.invitations i
     where i.tenant_id = p_tenant and i.id = p_id
       for update;
    if not found or inv_hash is distinct from p_token_hash then
        return query select 'not_found'::text, null::text, null::timestamptz, null::timestamptz, null::timestamptz;
        return;
    end if;
    if inv_accepted is not null then
        return query select 'used'::text, inv_role, null::timestamptz, null::timestamptz, inv_expires;
        return;
    end if;
    if inv_revoked is not null then
        return query select 'revoked'::text, inv_role, null::timestamptz, null::timestamptz, inv_expires;
        return;
    end if;
    if inv_expires <= now_ then
        return query select 'expired'::text, inv_role, null::timestamptz, null::timestamptz, inv_expires;
        return;
    end if;
    if p_email is null or lower(p_email) <> lower(inv_email) then
        return query select 'wrong_email'::text, inv_role, null::timestamptz, null::timestamptz, inv_expires;
        return;
    end if;
    if exists (select 1 from app.memberships m where m.tenant_id = p_tenant and m.user_id = me) then
        return query select 'already_member'::text, inv_role, null::timestamptz, null::timestamptz, inv_expires;
        return;
    end if;
    insert into app.memberships as m (tenant_id, user_id, role) values (p_tenant, me, inv_role)
    returning m.created_at, m.updated_at into joined_at, changed_at;
    update app.invitations i set accepted_at = now_, accepted_by = me
     where i.tenant_id = p_tenant and i.id = p_id;
    return query select 'accepted'::text, inv_role, joined_at, changed_at, inv_expires;
end
$$;
revoke execute on function app.accept_invitation(uuid, uuid, bytea, text) from public;
grant execute on function app.accept_invitation(uuid, uuid, bytea, text) to frontdesk_app;
