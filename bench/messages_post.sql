-- pgbench template: the SQL transaction the server runs for
-- POST /v1/tenants/{tenant}/conversations/{id}/messages with a tenant API key and the body
-- {"role":"user","content":<content>,"prompt_tokens":12,"completion_tokens":7,
--  "model":"gpt-4o-mini","provider":"openai","cost_usd":"0.0004"}
-- (crates/frontdesk-pg/src/tx.rs for the preamble, crates/frontdesk-core/src/conversations/messages.rs
-- `create` for the statement; keep them in step). One pipeline, commit included: one round
-- trip, as the server sends it (no Idempotency-Key, so the insert is the only statement).
-- The insert fires the messages trigger: the conversation's counters move and a
-- message.created event is written, exactly as for the server.
--
-- A random conversation n and the context (the tenant tree of the server's context
-- statement, logged in as frontdesk_app) as in messages_get.sql. The content is line
-- (t mod lines) of messages_contents.txt, which messages.sh loads into bench.contents;
-- the wrk script sends the same line for the same tenant. The body's other fields come
-- from -D.
--
-- Where this differs from what the server sends, unavoidably:
--   * `begin` and `commit` are prepared rather than simple queries, the context statement
--     is one of 100 prepared copies, and there is one Sync instead of four (see
--     messages_get.sql).
--   * Tenant, conversation and content are read inside the statement (three primary-key
--     probes of small tables) instead of being bound as parameters; the message id, which
--     the server makes in Rust (Uuid::now_v7) and binds as $2, is made in SQL by
--     bench.uuid_v7_at(clock_timestamp()).
--   * latency_ms, action_taken, questions_asked, delegation_plan and reservation_id,
--     absent from the body, are null literals: pgbench cannot bind NULL.
\set n random(0, :targets - 1)
\set t :n / :conversations
\set content :t % :contents
\startpipeline
begin;
@CONTEXT@
insert into app.messages (tenant_id, id, conversation_id, role, content, prompt_tokens,
                     completion_tokens, model, provider, cost_usd, latency_ms, action_taken,
                     questions_asked, delegation_plan, metadata, reservation_id)
                 values ((select tenant_id from bench.targets where n = :n),
                         bench.uuid_v7_at(clock_timestamp()),
                         (select conversation_id from bench.targets where n = :n),
                         :role, (select content from bench.contents where i = :content),
                         :prompt_tokens, :completion_tokens, :model, :provider, :cost_usd,
                         null, null, null, null, :metadata, null)
                 returning id, conversation_id, role, content, prompt_tokens, completion_tokens, total_tokens,
    model, provider, cost_usd, latency_ms, action_taken, questions_asked, delegation_plan, metadata,
    created_at, redacted_at, redacted_by, cost_source;
commit;
\endpipeline
