-- Back to 0014: no invitations, and app.touch_user as 0007 wrote it.

drop function app.accept_invitation(uuid, uuid, bytea, text);
drop table app.invitations;
drop function app.user_by_email(text);

create or replace function app.touch_user(p_id uuid, p_email text, p_name text) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    seen timestamptz := now();
begin
    insert into app.users as u (id, email, name, last_active_at) values (p_id, p_email, p_name, seen)
    on conflict (id) do update
        set email = coalesce(excluded.email, u.email),
            name = coalesce(excluded.name, u.name),
            last_active_at = excluded.last_active_at;
end
$$;

drop index app.users_verified_email_idx;
alter table app.users drop column email_verified;
