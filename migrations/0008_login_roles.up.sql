-- Login roles instead of SET ROLE (issue 11).
--
-- Before: the server logged in as frontdesk_authenticator and switched, per transaction,
-- to frontdesk_user, frontdesk_service, frontdesk_callback or frontdesk_operator with
-- `SET LOCAL ROLE`. On Citus that breaks SECURITY DEFINER functions (the propagated role
-- change is replayed on the connections the definer opens), and NOLOGIN roles cannot be
-- used on the workers at all. Now (roles created by `frontdesk`, crates/frontdesk-pg/src/roles.rs):
--   frontdesk_owner     LOGIN; owns the schema and the SECURITY DEFINER functions; migrations
--   frontdesk_app       LOGIN, no BYPASSRLS; every tenant request and the authentication lookups
--   frontdesk_operator  LOGIN BYPASSRLS; operator endpoints and the background workers
-- Who the caller is travels only in transaction-local settings: `frontdesk.caller_kind`
-- ('user' | 'key' | 'callback' | 'operator') beside the tenant, user, member role, key and
-- scope. What used to differ between the request roles' grants is now the first condition
-- of every policy: the caller kinds the policy was written for. frontdesk_app holds the
-- union of the old request roles' grants; frontdesk_user, frontdesk_service,
-- frontdesk_callback and frontdesk_authenticator keep nothing here (the roles themselves
-- stay: 0001–0007 grant to them, and roles are cluster-wide).

-- ---------------------------------------------------------------------------------------
-- The caller kind, read like the other settings (inlined into policies).
create function app.caller_kind() returns text
    language sql stable parallel safe
    as $$ select nullif(current_setting('frontdesk.caller_kind', true), '') $$;
comment on function app.caller_kind() is
    'user | key | callback | operator: who makes the request, set per transaction and checked by app.assert_principal() / app.assert_callback()';

-- ---------------------------------------------------------------------------------------
-- Policies: every policy of the request roles now applies to frontdesk_app, with the caller
-- kinds those roles stood for as its first condition.
alter policy api_keys_insert on app.api_keys to frontdesk_app
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy api_keys_select on app.api_keys to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy api_keys_update on app.api_keys to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())))
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy assistants_delete on app.assistants to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy assistants_insert on app.assistants to frontdesk_app
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy assistants_select on app.assistants to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and ((tenant_id = app.current_tenant())));
alter policy assistants_update on app.assistants to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())))
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy contacts_delete on app.contacts to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write())));
alter policy contacts_insert on app.contacts to frontdesk_app
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write())));
alter policy contacts_select on app.contacts to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff())));
alter policy contacts_update on app.contacts to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write())))
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write())));
alter policy conversation_transitions_select on app.conversation_transitions to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (owner_user_id = app.current_user_id())))));
alter policy conversations_delete on app.conversations to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy conversations_insert on app.conversations to frontdesk_app
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy conversations_select on app.conversations to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy conversations_update on app.conversations to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))))
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy events_select on app.events to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff())));
alter policy feedback_delete on app.feedback to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id())))));
alter policy feedback_insert on app.feedback to frontdesk_app
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id())))));
alter policy feedback_select on app.feedback to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy feedback_update on app.feedback to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id())))))
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND ((user_id = app.current_user_id()) OR (key_id = app.current_key_id())))));
alter policy feedback_daily_select on app.feedback_daily to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy flows_insert on app.flows to frontdesk_app
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy flows_select on app.flows to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and ((tenant_id = app.current_tenant())));
alter policy idempotency_keys_own on app.idempotency_keys to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (NOT (user_id IS DISTINCT FROM app.current_user_id())) AND (NOT (key_id IS DISTINCT FROM app.current_key_id())))))
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (NOT (user_id IS DISTINCT FROM app.current_user_id())) AND (NOT (key_id IS DISTINCT FROM app.current_key_id())))));
alter policy limit_hits_select on app.limit_hits to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff())));
alter policy limit_reservations_select on app.limit_reservations to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (actor_user_id = app.current_user_id())))));
alter policy limit_state_select on app.limit_state to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff())));
alter policy memberships_delete on app.memberships to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text)))));
alter policy memberships_insert on app.memberships to frontdesk_app
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text)))));
alter policy memberships_select on app.memberships to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy memberships_update on app.memberships to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text)))))
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin() AND ((role <> 'owner'::text) OR (app.current_member_role() = 'owner'::text)))));
alter policy messages_insert on app.messages to frontdesk_app
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.can_write() AND (app.is_tenant_staff() OR (owner_user_id = app.current_user_id())))));
alter policy messages_redact on app.messages to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())))
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy messages_select on app.messages to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (owner_user_id = app.current_user_id())))));
alter policy provider_callbacks_insert on app.provider_callbacks to frontdesk_app
    with check (app.caller_kind() = 'callback' and (((tenant_id = app.current_tenant()) AND (provider = app.current_provider()))));
alter policy provider_callbacks_select on app.provider_callbacks to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff())));
alter policy provider_secrets_delete on app.provider_secrets to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy provider_secrets_insert on app.provider_secrets to frontdesk_app
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy provider_secrets_select on app.provider_secrets to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy provider_secrets_update on app.provider_secrets to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())))
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy tenant_model_prices_insert on app.tenant_model_prices to frontdesk_app
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy tenant_model_prices_select on app.tenant_model_prices to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff())));
alter policy tenants_delete on app.tenants to frontdesk_app
    using (app.caller_kind() = 'user' and (((id = app.current_tenant()) AND (app.current_member_role() = 'owner'::text))));
alter policy tenants_select on app.tenants to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and ((id = app.current_tenant())));
alter policy tenants_update on app.tenants to frontdesk_app
    using (app.caller_kind() = 'user' and (((id = app.current_tenant()) AND app.is_tenant_admin())))
    with check (app.caller_kind() = 'user' and (((id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy usage_daily_select on app.usage_daily to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy usage_events_insert on app.usage_events to frontdesk_app
    with check (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND app.is_tenant_staff() AND app.can_write())));
alter policy usage_events_select on app.usage_events to frontdesk_app
    using (app.caller_kind() in ('key', 'user') and (((tenant_id = app.current_tenant()) AND (app.is_tenant_staff() OR (user_id = app.current_user_id())))));
alter policy users_self on app.users to frontdesk_app
    using (app.caller_kind() = 'user' and ((id = app.current_user_id())));
alter policy webhook_attempts_select on app.webhook_attempts to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy webhook_deliveries_select on app.webhook_deliveries to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy webhook_endpoints_delete on app.webhook_endpoints to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy webhook_endpoints_insert on app.webhook_endpoints to frontdesk_app
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy webhook_endpoints_select on app.webhook_endpoints to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy webhook_endpoints_update on app.webhook_endpoints to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())))
    with check (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));
alter policy webhook_queue_select on app.webhook_queue to frontdesk_app
    using (app.caller_kind() = 'user' and (((tenant_id = app.current_tenant()) AND app.is_tenant_admin())));

-- Grants: frontdesk_app holds what the request roles and the authenticator held together.
grant insert, select on app.api_keys to frontdesk_app;
revoke all on app.api_keys from frontdesk_user;
grant insert, select, update, delete on app.assistants to frontdesk_app;
revoke all on app.assistants from frontdesk_user, frontdesk_service;
grant select on app.builtin_flows to frontdesk_app;
revoke all on app.builtin_flows from frontdesk_user, frontdesk_service;
grant insert, select, update, delete on app.contacts to frontdesk_app;
revoke all on app.contacts from frontdesk_user, frontdesk_service;
grant select on app.conversation_transitions to frontdesk_app;
revoke all on app.conversation_transitions from frontdesk_user, frontdesk_service;
grant insert, select, delete on app.conversations to frontdesk_app;
revoke all on app.conversations from frontdesk_user, frontdesk_service;
grant select on app.events to frontdesk_app;
revoke all on app.events from frontdesk_user, frontdesk_service;
grant insert, select, delete on app.feedback to frontdesk_app;
revoke all on app.feedback from frontdesk_user, frontdesk_service;
grant select on app.feedback_daily to frontdesk_app;
revoke all on app.feedback_daily from frontdesk_user, frontdesk_service;
grant insert, select on app.flows to frontdesk_app;
revoke all on app.flows from frontdesk_user, frontdesk_service;
grant insert, select, delete on app.idempotency_keys to frontdesk_app;
revoke all on app.idempotency_keys from frontdesk_user, frontdesk_service;
grant select on app.limit_hits to frontdesk_app;
revoke all on app.limit_hits from frontdesk_user, frontdesk_service;
grant select on app.limit_reservations to frontdesk_app;
revoke all on app.limit_reservations from frontdesk_user, frontdesk_service;
grant select on app.limit_state to frontdesk_app;
revoke all on app.limit_state from frontdesk_user, frontdesk_service;
grant insert, select, update, delete on app.memberships to frontdesk_app;
revoke all on app.memberships from frontdesk_user;
grant insert, select on app.messages to frontdesk_app;
revoke all on app.messages from frontdesk_user, frontdesk_service;
grant select on app.model_prices to frontdesk_app;
revoke all on app.model_prices from frontdesk_user, frontdesk_service;
grant select on app.provider_callbacks to frontdesk_app;
revoke all on app.provider_callbacks from frontdesk_user, frontdesk_service;
grant delete on app.provider_secrets to frontdesk_app;
revoke all on app.provider_secrets from frontdesk_user;
grant insert, select on app.tenant_model_prices to frontdesk_app;
revoke all on app.tenant_model_prices from frontdesk_user, frontdesk_service;
grant select, update, delete on app.tenants to frontdesk_app;
revoke all on app.tenants from frontdesk_user, frontdesk_service;
grant select on app.usage_daily to frontdesk_app;
revoke all on app.usage_daily from frontdesk_user, frontdesk_service;
grant insert, select on app.usage_events to frontdesk_app;
revoke all on app.usage_events from frontdesk_user, frontdesk_service;
grant select on app.users to frontdesk_app;
revoke all on app.users from frontdesk_user;
grant select on app.webhook_attempts to frontdesk_app;
revoke all on app.webhook_attempts from frontdesk_user;
grant select on app.webhook_deliveries to frontdesk_app;
revoke all on app.webhook_deliveries from frontdesk_user;
grant delete on app.webhook_endpoints to frontdesk_app;
revoke all on app.webhook_endpoints from frontdesk_user;
grant select on app.webhook_queue to frontdesk_app;
revoke all on app.webhook_queue from frontdesk_user;
grant update (name, revoked_at) on app.api_keys to frontdesk_app;
revoke all (name, revoked_at) on app.api_keys from frontdesk_user;
grant update (contact_id, channel, title, state, context, parsed_intent, answered_questions, pending_questions, selected_kb_ids, active_task_plan_id, assignee_id, handoff_reason, handoff_at, archived, metadata) on app.conversations to frontdesk_app;
revoke all (contact_id, channel, title, state, context, parsed_intent, answered_questions, pending_questions, selected_kb_ids, active_task_plan_id, assignee_id, handoff_reason, handoff_at, archived, metadata) on app.conversations from frontdesk_user, frontdesk_service;
grant update (rating, comment) on app.feedback to frontdesk_app;
revoke all (rating, comment) on app.feedback from frontdesk_user, frontdesk_service;
grant update (content, redacted_at, redacted_by) on app.messages to frontdesk_app;
revoke all (content, redacted_at, redacted_by) on app.messages from frontdesk_user;
grant insert (tenant_id, id, provider, external_id, payload) on app.provider_callbacks to frontdesk_app;
revoke all (tenant_id, id, provider, external_id, payload) on app.provider_callbacks from frontdesk_callback;
grant insert (tenant_id, provider) on app.provider_secrets to frontdesk_app;
grant select (tenant_id, provider) on app.provider_secrets to frontdesk_app;
revoke all (tenant_id, provider) on app.provider_secrets from frontdesk_user;
grant insert (secret) on app.provider_secrets to frontdesk_app;
grant update (secret) on app.provider_secrets to frontdesk_app;
revoke all (secret) on app.provider_secrets from frontdesk_user;
grant insert (fingerprint) on app.provider_secrets to frontdesk_app;
grant select (fingerprint) on app.provider_secrets to frontdesk_app;
grant update (fingerprint) on app.provider_secrets to frontdesk_app;
revoke all (fingerprint) on app.provider_secrets from frontdesk_user;
grant select (created_at, updated_at) on app.provider_secrets to frontdesk_app;
revoke all (created_at, updated_at) on app.provider_secrets from frontdesk_user;
grant insert (tenant_id, id) on app.webhook_endpoints to frontdesk_app;
grant select (tenant_id, id) on app.webhook_endpoints to frontdesk_app;
revoke all (tenant_id, id) on app.webhook_endpoints from frontdesk_user;
grant insert (url, description, event_types, enabled) on app.webhook_endpoints to frontdesk_app;
grant select (url, description, event_types, enabled) on app.webhook_endpoints to frontdesk_app;
grant update (url, description, event_types, enabled) on app.webhook_endpoints to frontdesk_app;
revoke all (url, description, event_types, enabled) on app.webhook_endpoints from frontdesk_user;
grant insert (secret) on app.webhook_endpoints to frontdesk_app;
revoke all (secret) on app.webhook_endpoints from frontdesk_user;
grant select (previous_secret_until, failing_since, disabled_at, disabled_reason, created_at, updated_at) on app.webhook_endpoints to frontdesk_app;
revoke all (previous_secret_until, failing_since, disabled_at, disabled_reason, created_at, updated_at) on app.webhook_endpoints from frontdesk_user;
grant execute on function app.assert_callback() to frontdesk_app;
revoke execute on function app.assert_callback() from frontdesk_callback;
grant execute on function app.assert_principal() to frontdesk_app;
revoke execute on function app.assert_principal() from frontdesk_user, frontdesk_service;
grant execute on function app.authenticate_key(bytea) to frontdesk_app;
revoke execute on function app.authenticate_key(bytea) from frontdesk_authenticator;
grant execute on function app.can_write() to frontdesk_app;
revoke execute on function app.can_write() from frontdesk_user, frontdesk_service;
grant execute on function app.cancel_reservation(uuid) to frontdesk_app;
revoke execute on function app.cancel_reservation(uuid) from frontdesk_user, frontdesk_service;
grant execute on function app.create_tenant(uuid,jsonb,uuid) to frontdesk_app;
revoke execute on function app.create_tenant(uuid,jsonb,uuid) from frontdesk_user;
grant execute on function app.current_key_id() to frontdesk_app;
revoke execute on function app.current_key_id() from frontdesk_user, frontdesk_service;
grant execute on function app.current_key_scope() to frontdesk_app;
revoke execute on function app.current_key_scope() from frontdesk_user, frontdesk_service;
grant execute on function app.current_member_role() to frontdesk_app;
revoke execute on function app.current_member_role() from frontdesk_user, frontdesk_service;
grant execute on function app.current_tenant() to frontdesk_app;
revoke execute on function app.current_tenant() from frontdesk_user, frontdesk_service;
grant execute on function app.current_user_id() to frontdesk_app;
revoke execute on function app.current_user_id() from frontdesk_user, frontdesk_service;
grant execute on function app.flow_definition(uuid,text) to frontdesk_app;
revoke execute on function app.flow_definition(uuid,text) from frontdesk_user, frontdesk_service;
grant execute on function app.is_search_language(text) to frontdesk_app;
revoke execute on function app.is_search_language(text) from frontdesk_user, frontdesk_service;
grant execute on function app.is_tenant_admin() to frontdesk_app;
revoke execute on function app.is_tenant_admin() from frontdesk_user, frontdesk_service;
grant execute on function app.is_tenant_staff() to frontdesk_app;
revoke execute on function app.is_tenant_staff() from frontdesk_user, frontdesk_service;
grant execute on function app.limit_status() to frontdesk_app;
revoke execute on function app.limit_status() from frontdesk_user, frontdesk_service;
grant execute on function app.message_document(text,text) to frontdesk_app;
revoke execute on function app.message_document(text,text) from frontdesk_user, frontdesk_service;
grant execute on function app.note_limit_reached(text,timestamp with time zone,jsonb) to frontdesk_app;
revoke execute on function app.note_limit_reached(text,timestamp with time zone,jsonb) from frontdesk_user, frontdesk_service;
grant execute on function app.price_at(uuid,text,text,timestamp with time zone) to frontdesk_app;
revoke execute on function app.price_at(uuid,text,text,timestamp with time zone) from frontdesk_user, frontdesk_service;
grant execute on function app.provider_secret(uuid,text) to frontdesk_app;
revoke execute on function app.provider_secret(uuid,text) from frontdesk_authenticator;
grant execute on function app.provision_user(uuid,text,text) to frontdesk_app;
revoke execute on function app.provision_user(uuid,text,text) from frontdesk_user;
grant execute on function app.reserve_limits(uuid,bigint,numeric,text,integer) to frontdesk_app;
revoke execute on function app.reserve_limits(uuid,bigint,numeric,text,integer) from frontdesk_user, frontdesk_service;
grant execute on function app.resolve_tenant(text,uuid) to frontdesk_app;
revoke execute on function app.resolve_tenant(text,uuid) from frontdesk_authenticator;
grant execute on function app.retry_delivery(uuid) to frontdesk_app;
revoke execute on function app.retry_delivery(uuid) from frontdesk_user;
grant execute on function app.rotate_webhook_secret(uuid,text,interval) to frontdesk_app;
revoke execute on function app.rotate_webhook_secret(uuid,text,interval) from frontdesk_user;
grant execute on function app.send_test_event(uuid) to frontdesk_app;
revoke execute on function app.send_test_event(uuid) from frontdesk_user;
grant execute on function app.tenant_members(uuid,bigint,uuid) to frontdesk_app;
revoke execute on function app.tenant_members(uuid,bigint,uuid) from frontdesk_user;
grant execute on function app.touch_user(uuid,text,text) to frontdesk_app;
revoke execute on function app.touch_user(uuid,text,text) from frontdesk_authenticator;
grant execute on function app.user_tenants(uuid,bigint) to frontdesk_app;
revoke execute on function app.user_tenants(uuid,bigint) from frontdesk_user;
grant execute on function app.uuid_v7() to frontdesk_app;
revoke execute on function app.uuid_v7() from frontdesk_user, frontdesk_service;
grant usage on schema app to frontdesk_app;
revoke usage on schema app from frontdesk_user, frontdesk_service, frontdesk_authenticator, frontdesk_callback;

-- ---------------------------------------------------------------------------------------
-- The database's own check of the request context, now by caller kind. Raises
-- insufficient_privilege (hint `frontdesk-context`) unless the settings describe a real
-- principal:
--   user:     a user; with a tenant, an active membership with exactly that role
--   key:      a key of that tenant, not revoked, holding that scope
--   operator: only on a login that bypasses RLS (frontdesk_operator); names nobody
-- A callback's context is checked by app.assert_callback() instead.
-- replaces app.assert_principal (the request role is no longer a role: the caller kind is a setting)
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

-- replaces app.assert_callback (the callback kind is a setting, not a role)
create or replace function app.assert_callback() returns void
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.current_tenant();
    p text := app.current_provider();
    f text := nullif(current_setting('frontdesk.secret_fingerprint', true), '');
begin
    if app.caller_kind() is distinct from 'callback' then
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

-- replaces app.assert_tenant_admin (the operator is a caller kind)
create or replace function app.assert_tenant_admin() returns uuid
    language plpgsql stable
    as $$
begin
    if app.current_tenant() is null or not (app.is_tenant_admin() or app.caller_kind() = 'operator') then
        raise exception 'webhooks are managed by the tenant''s owners and admins'
            using errcode = 'insufficient_privilege';
    end if;
    return app.current_tenant();
end
$$;

-- replaces app.messages_count_in_conversation (the operator is a caller kind; the
-- caller's visibility is read into variables first: Citus refuses the helpers' inlined
-- COALESCE of a stable function inside an UPDATE's WHERE)
create or replace function app.messages_count_in_conversation() returns trigger
    language plpgsql security definer
    set search_path = pg_catalog
    as $$
declare
    sees_all boolean := app.is_tenant_staff() or app.caller_kind() = 'operator';
    me uuid := app.current_user_id();
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
       and (sees_all or c.user_id = me)
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

-- replaces app.provision_user (the operator and people are caller kinds)
create or replace function app.provision_user(p_id uuid, p_email text, p_name text) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    if not (app.caller_kind() = 'operator'
            or (app.caller_kind() = 'user' and app.is_tenant_admin())) then
        raise exception 'only admins add members' using errcode = 'insufficient_privilege';
    end if;
    insert into app.users (id, email, name) values (p_id, p_email, p_name)
    on conflict (id) do nothing;
end
$$;

-- ---------------------------------------------------------------------------------------
-- The global lookups (0007) are written by the statement's caller, not by triggers: on
-- Citus a trigger runs on a tenant's shard on a worker, and a query on a shard cannot
-- write a reference table ("cannot execute a distributed query from a query on a shard").
-- The caller is a SECURITY DEFINER function that writes only the lookup table; the
-- request then writes the tenant's own rows as itself (Citus refuses a second user on a
-- tenant's shards once one wrote them in a transaction, but these are other placements).
drop trigger tenants_slug on app.tenants;
drop function app.tenants_slug();
drop trigger api_keys_hash on app.api_keys;
drop function app.api_keys_hash();
comment on table app.tenant_slugs is 'global: every tenant''s slug, unique across tenants (a reference table on Citus); written by app.take_slug (creating a tenant, app.claim_slug), read by app.resolve_tenant, which also requires the tenant to still hold the slug';
comment on table app.api_key_hashes is 'global: the SHA-256 of every API key''s secret, unique across tenants (a reference table on Citus); written by app.claim_key_hash before the key''s row, read by app.authenticate_key';

-- Give `p_slug` to `p_tenant` (and release the tenant's former slug). A slug held by
-- another tenant that still has it is refused with tenant_slugs_pkey (the API's "slug is
-- taken"); a row left by a tenant since deleted or renamed is taken over. For the
-- functions below only (no grant).
create function app.take_slug(p_tenant uuid, p_slug text) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    holder uuid;
begin
    select s.tenant into holder from app.tenant_slugs s where s.slug = p_slug;
    if found then
        if holder = p_tenant then
            return;
        end if;
        if exists (select 1 from app.tenants t where t.id = holder and t.slug = p_slug) then
            raise exception 'slug % is taken', p_slug
                using errcode = 'unique_violation', constraint = 'tenant_slugs_pkey',
                      table = 'tenant_slugs', schema = 'app';
        end if;
        delete from app.tenant_slugs s where s.slug = p_slug;
    end if;
    delete from app.tenant_slugs s where s.tenant = p_tenant;
    insert into app.tenant_slugs (slug, tenant) values (p_slug, p_tenant);
end
$$;
revoke execute on function app.take_slug(uuid, text) from public;

-- Before renaming the current tenant: its owners and admins, or the operator.
create function app.claim_slug(p_tenant uuid, p_slug text) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    if not (app.caller_kind() = 'operator'
            or (app.caller_kind() = 'user' and app.current_tenant() = p_tenant and app.is_tenant_admin())) then
        raise exception 'only the tenant''s owners and admins rename it' using errcode = 'insufficient_privilege';
    end if;
    perform app.take_slug(p_tenant, p_slug);
end
$$;
revoke execute on function app.claim_slug(uuid, text) from public;
grant execute on function app.claim_slug(uuid, text) to frontdesk_app, frontdesk_operator;

-- Before creating a key of the current tenant: record its hash (its owners and admins, or
-- the operator). A hash already recorded is refused by api_key_hashes_pkey.
create function app.claim_key_hash(p_key uuid, p_hash bytea) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
declare
    t uuid := app.current_tenant();
begin
    if t is null or not (app.caller_kind() = 'operator'
                         or (app.caller_kind() = 'user' and app.is_tenant_admin())) then
        raise exception 'only the tenant''s owners and admins create keys' using errcode = 'insufficient_privilege';
    end if;
    insert into app.api_key_hashes (secret_hash, tenant, key_id) values (p_hash, t, p_key);
end
$$;
revoke execute on function app.claim_key_hash(uuid, bytea) from public;
grant execute on function app.claim_key_hash(uuid, bytea) to frontdesk_app, frontdesk_operator;

-- Before deleting the current tenant: drop its slug and its keys' hashes (its owners, or
-- the operator).
create function app.forget_tenant_lookups(p_tenant uuid) returns void
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
begin
    if not (app.caller_kind() = 'operator'
            or (app.caller_kind() = 'user' and app.current_tenant() = p_tenant
                and app.current_member_role() = 'owner')) then
        raise exception 'only the tenant''s owners delete it' using errcode = 'insufficient_privilege';
    end if;
    delete from app.tenant_slugs s where s.tenant = p_tenant;
    delete from app.api_key_hashes h where h.tenant = p_tenant;
end
$$;
revoke execute on function app.forget_tenant_lookups(uuid) from public;
grant execute on function app.forget_tenant_lookups(uuid) to frontdesk_app, frontdesk_operator;

-- Create a tenant; the signed-in user (if any) becomes its owner. Its columns are named
-- in the result (no table row type in a signature: Citus does not create such functions
-- on the workers).
-- replaces app.create_tenant (no table row type in its signature; the caller kind instead of the role)
drop function app.create_tenant(uuid, jsonb, uuid);
create function app.create_tenant(p_id uuid, p_fields jsonb, p_owner uuid)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text)
    language plpgsql volatile security definer
    set search_path = pg_catalog
    as $$
#variable_conflict use_column
declare
    kind_ text := app.caller_kind();
    owner_id uuid := coalesce(app.current_user_id(), p_owner);
begin
    if kind_ is distinct from 'user' and kind_ is distinct from 'operator' then
        raise exception 'only people and the operator create tenants' using errcode = 'insufficient_privilege';
    end if;
    if kind_ = 'user' and app.current_user_id() is null then
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
    from jsonb_populate_record(null::app.tenants, p_fields) f;
    if owner_id is not null then
        insert into app.memberships (tenant_id, user_id, role) values (p_id, owner_id, 'owner');
    end if;
    perform app.take_slug(p_id, (select t.slug from app.tenants t where t.id = p_id));
    return query
    select t.id, t.slug, t.name, t.kind, t.timezone, t.locale, t.email, t.phone, t.address, t.website,
           t.logo_url, t.llm_provider, t.llm_model, t.llm_temperature, t.llm_max_tokens, t.system_prompt,
           t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd, t.features, t.branding,
           t.is_active, t.created_at, t.updated_at, t.search_language
    from app.tenants t where t.id = p_id;
end
$$;
revoke execute on function app.create_tenant(uuid, jsonb, uuid) from public;
grant execute on function app.create_tenant(uuid, jsonb, uuid) to frontdesk_app, frontdesk_operator;

-- The tenants a user belongs to, with their role, newest first (ids are UUIDv7),
-- keyset-paginated by id. PL/pgSQL (Citus cannot plan SQL functions whose parameters
-- reach distributed tables) and with named columns (no table row type in a signature).
-- replaces app.user_tenants (PL/pgSQL with named columns, as Citus needs; the caller kind instead of the role)
drop function app.user_tenants(uuid, bigint);
create function app.user_tenants(p_after_id uuid, p_limit bigint)
    returns table (id uuid, slug text, name text, kind text, timezone text, locale text,
                   email text, phone text, address text, website text, logo_url text,
                   llm_provider text, llm_model text, llm_temperature numeric, llm_max_tokens integer,
                   system_prompt text, rate_limit_per_minute integer, daily_token_limit bigint,
                   monthly_budget_usd numeric, features jsonb, branding jsonb, is_active boolean,
                   created_at timestamptz, updated_at timestamptz, search_language text,
                   member_role text)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
declare
    ids uuid[];
    roles text[];
begin
    if app.caller_kind() is distinct from 'user' or app.current_user_id() is null then
        return;
    end if;
    -- Two plain reads, not a join: the memberships are spread over every tenant's shard,
    -- which Citus cannot join to the tenants they name in one distributed plan.
    select array_agg(m.tenant_id), array_agg(m.role) into ids, roles
      from app.memberships m
     where m.user_id = app.current_user_id() and (p_after_id is null or m.tenant_id < p_after_id);
    if ids is null then
        return;
    end if;
    return query
    select t.id, t.slug, t.name, t.kind, t.timezone, t.locale, t.email, t.phone, t.address, t.website,
           t.logo_url, t.llm_provider, t.llm_model, t.llm_temperature, t.llm_max_tokens, t.system_prompt,
           t.rate_limit_per_minute, t.daily_token_limit, t.monthly_budget_usd, t.features, t.branding,
           t.is_active, t.created_at, t.updated_at, t.search_language, roles[array_position(ids, t.id)]
    from app.tenants t
    where t.id = any (ids)
    order by t.id desc
    limit p_limit;
end
$$;
revoke execute on function app.user_tenants(uuid, bigint) from public;
grant execute on function app.user_tenants(uuid, bigint) to frontdesk_app;

-- A tenant's members with their profile (users' rows are otherwise visible only to
-- themselves). Staff only, and only for the tenant of the current context. PL/pgSQL, as
-- Citus needs.
-- replaces app.tenant_members (PL/pgSQL, as Citus needs; the caller kind instead of the role)
drop function app.tenant_members(uuid, bigint, uuid);
create function app.tenant_members(p_after_user uuid, p_limit bigint, p_user uuid)
    returns table (user_id uuid, role text, email text, name text,
                   created_at timestamptz, updated_at timestamptz, last_active_at timestamptz)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
begin
    if app.current_tenant() is null
       or not (app.is_tenant_staff() or app.caller_kind() = 'operator') then
        return;
    end if;
    return query
    select m.user_id, m.role, u.email, u.name, m.created_at, m.updated_at, u.last_active_at
    from app.memberships m join app.users u on u.id = m.user_id
    where m.tenant_id = app.current_tenant()
      and (p_after_user is null or m.user_id > p_after_user)
      and (p_user is null or m.user_id = p_user)
    order by m.user_id
    limit p_limit;
end
$$;
revoke execute on function app.tenant_members(uuid, bigint, uuid) from public;
grant execute on function app.tenant_members(uuid, bigint, uuid) to frontdesk_app, frontdesk_operator;

-- The secret of a tenant's provider, for verifying a callback's signature: only outside
-- any request transaction (the server's lookup before the callback's context exists), so
-- no request — a callback's included — can read a secret. PL/pgSQL, as Citus needs.
-- replaces app.provider_secret (refuses inside a request context, which a role used to ensure)
create or replace function app.provider_secret(p_tenant uuid, p_provider text)
    returns table (secret text, fingerprint text)
    language plpgsql stable security definer
    set search_path = pg_catalog
    as $$
begin
    if app.caller_kind() is not null then
        raise exception 'provider secrets are read only before a request''s context exists'
            using errcode = 'insufficient_privilege';
    end if;
    return query
    select s.secret, s.fingerprint from app.provider_secrets s
    where s.tenant_id = p_tenant and s.provider = p_provider;
end
$$;
