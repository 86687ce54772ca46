-- Removes what 0003 created.
drop table app.usage_events;
drop function app.usage_events_add_usage();
drop function app.usage_events_cost();
drop function app.usage_events_actor();

drop trigger messages_40_usage on app.messages;
drop trigger messages_30_limits on app.messages;
drop trigger messages_10_cost on app.messages;
drop function app.messages_add_usage();
drop function app.charge_write();
drop function app.messages_cost();

drop trigger tenants_limits_set on app.tenants;
drop function app.tenants_limits_set();
drop function app.limit_status();
drop function app.expire_reservations();
drop function app.cancel_reservation(uuid);
drop function app.reserve_limits(uuid, bigint, numeric, text, integer);
drop function app.charge_limits(uuid, text, integer, bigint, numeric, bigint, numeric, uuid, uuid);
drop function app.take_reservation(uuid, uuid, uuid);
drop function app.release_reservation(app.limit_reservations);
drop function app.refuse_past_limit(uuid, text, text, numeric, numeric, numeric, timestamptz, timestamptz);
drop table app.limit_state;
drop function app.reserved_in(uuid, text, timestamptz, boolean);
alter table app.messages drop column reservation_id;
drop table app.limit_reservations;
drop function app.note_limit_reached(text, timestamptz, jsonb);
drop table app.limit_hits;

drop function app.add_usage(uuid, timestamptz, text, uuid, uuid, text, text, boolean, int, int, int,
                            bigint, bigint, numeric, boolean, int);
drop table app.usage_daily;
drop function app.token_cost(uuid, text, text, timestamptz, integer, integer);
drop function app.price_at(uuid, text, text, timestamptz);
drop table app.tenant_model_prices;
drop table app.model_prices;
