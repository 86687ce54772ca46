-- Removes what 0005 created.
drop function app.finish_attempt(uuid, uuid, uuid, timestamptz, integer, integer, text, text, text, timestamptz, interval);
drop function app.claim_deliveries(uuid, integer, interval);
drop function app.retry_delivery(uuid);
drop function app.send_test_event(uuid);
drop function app.rotate_webhook_secret(uuid, text, interval);
drop function app.assert_tenant_admin();
drop trigger events_fan_out on app.events;
drop function app.events_fan_out();
drop function app.enqueue_delivery(uuid, uuid, uuid, timestamptz);
drop table app.webhook_queue;
drop table app.webhook_attempts;
drop table app.webhook_deliveries;
drop table app.webhook_endpoints;
drop function app.webhook_endpoints_enabled();
drop function app.event_type_matches(text[], text);
drop function app.event_types_valid(text[]);
