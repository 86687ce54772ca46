-- The feedback rollup: ratings per (tenant, day of the rated message in the tenant's time
-- zone, conversation owner, assistant, provider, model), kept by the feedback triggers,
-- so /analytics/feedback never reads the feedback or messages tables. Each rating
-- remembers its rollup row (rollup_id, set on insert), so changing or removing it
-- adjusts the same row even if the conversation's assistant or owner changed since.
-- Ratings given before this migration are not in the rollup.

create table app.feedback_daily (
    tenant_id    uuid not null references app.tenants (id) on delete cascade,
    id           uuid not null,
    day          date not null,
    user_id      uuid,
    assistant_id uuid,
    provider     text,
    model        text,
    positive     bigint not null default 0,
    negative     bigint not null default 0,
    constraint feedback_daily_pkey primary key (tenant_id, id),
    constraint feedback_daily_key unique nulls not distinct (tenant_id, day, user_id, assistant_id, provider, model),
    constraint feedback_daily_counts_check check (positive >= 0 and negative >= 0)
);
comment on table app.feedback_daily is 'ratings per tenant, day of the rated message, owner, assistant, provider, model: kept by the feedback triggers';
comment on column app.feedback_daily.user_id is 'the rated conversation''s owner (null for contacts'' conversations)';

alter table app.feedback_daily enable row level security;
alter table app.feedback_daily force row level security;
create policy feedback_daily_select on app.feedback_daily for select to frontdesk_user, frontdesk_service
    using (tenant_id = app.current_tenant()
           and (app.is_tenant_staff() or user_id = app.current_user_id()));
create policy feedback_daily_owner on app.feedback_daily for all to frontdesk_owner
    using (tenant_id = app.current_tenant()) with check (tenant_id = app.current_tenant());
grant select on app.feedback_daily to frontdesk_user, frontdesk_service;
grant select, insert, update, delete on app.feedback_daily to frontdesk_operator;

-- The feedback trigger reads the rated message as the owner.
create policy messages_owner on app.messages for select to frontdesk_owner
    using (tenant_id = app.current_tenant());

alter table app.feedback add column rollup_id uuid;
comment on column app.feedback.rollup_id is 'the feedback_daily row this rating counts in (set by the insert trigger)';

create function app.feedback_before_insert() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    new.rollup_id := null;
    insert into app.feedback_daily as f (tenant_id, id, day, user_id, assistant_id, provider, model)
    select m.tenant_id, app.uuid_v7(), (m.created_at at time zone t.timezone)::date, m.owner_user_id,
           c.assistant_id, m.provider, m.model
      from app.messages m
      join app.conversations c on c.tenant_id = m.tenant_id and c.id = m.conversation_id
      join app.tenants t on t.id = m.tenant_id
     where m.tenant_id = new.tenant_id and m.id = new.message_id
    on conflict on constraint feedback_daily_key do update set positive = f.positive
    returning f.id into new.rollup_id;
    return new;
end
$$;
create trigger feedback_before_insert before insert on app.feedback
    for each row execute function app.feedback_before_insert();

create function app.feedback_count() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
begin
    if tg_op = 'UPDATE' and old.rating = new.rating then
        return null;
    end if;
    if tg_op in ('UPDATE', 'DELETE') then
        update app.feedback_daily f
           set positive = f.positive - (old.rating = 1)::int, negative = f.negative - (old.rating = -1)::int
         where f.tenant_id = old.tenant_id and f.id = old.rollup_id;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        update app.feedback_daily f
           set positive = f.positive + (new.rating = 1)::int, negative = f.negative + (new.rating = -1)::int
         where f.tenant_id = new.tenant_id and f.id = new.rollup_id;
    end if;
    return null;
end
$$;
create trigger feedback_count after insert or delete or update of rating on app.feedback
    for each row execute function app.feedback_count();
