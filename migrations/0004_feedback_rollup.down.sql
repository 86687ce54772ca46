-- Removes what 0004 created.
drop trigger feedback_count on app.feedback;
drop function app.feedback_count();
drop trigger feedback_before_insert on app.feedback;
drop function app.feedback_before_insert();
alter table app.feedback drop column rollup_id;
drop policy messages_owner on app.messages;
drop table app.feedback_daily;
