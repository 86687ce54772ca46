-- Removes what 0002 created.
drop table app.idempotency_keys;
drop table app.feedback;
drop function app.feedback_created();
drop table app.messages;
drop function app.messages_event();
drop function app.messages_count_in_conversation();
drop function app.messages_append_only();
drop table app.conversation_transitions;
drop table app.events;
drop table app.conversations;
drop function app.conversations_record();
drop function app.conversations_follow_flow();
drop function app.refuse_change();
drop function app.emit_event(uuid, text, uuid, jsonb);
drop table app.contacts;
drop table app.assistants;
drop function app.assistants_check_flow();
drop function app.flow_definition(uuid, text);
drop table app.flows;
drop function app.flows_not_builtin();
drop table app.builtin_flows;
drop function app.flow_is_valid(text[], text, text[], jsonb);

drop function app.message_document(text, text);
drop function app.uuid_v7();
