-- pgbench template: the SQL transaction the server runs for
-- GET /v1/tenants/{tenant}/conversations/{id}/messages?limit=50 with a tenant API key
-- (crates/frontdesk-pg/src/tx.rs for the preamble, crates/frontdesk-core/src/conversations/messages.rs
-- `history` for the statement; keep them in step). One pipeline, commit included: one
-- round trip, as the server sends it.
--
-- Each transaction picks a random conversation n of bench.targets (n = tenant number ×
-- conversations per tenant + conversation number). messages.sh passes -D targets=<rows>
-- -D conversations=<per tenant>, and replaces @TENANT_SETTINGS@ with a binary tree of
-- \if's over the tenant number t whose leaves are that tenant's
--     set local frontdesk.tenant_id = '<tenant id>';
--     set local frontdesk.key_id = '<its API key id>';
-- (the same text as the server's preamble; SET takes no parameters, so each tenant's
-- pair is its own prepared statement, while the history statement is one prepared
-- statement for all tenants, as on the server's connections).
--
-- Where this differs from what the server sends, unavoidably:
--   * The server sends the preamble as one simple-query string that PostgreSQL parses on
--     every request; pgbench in prepared mode prepares each statement once per connection.
--   * The tenant and conversation ids ($1, $2) are read from bench.targets by n inside
--     the statement (two primary-key probes of a small table): pgbench has no string
--     variables to hold them.
--   * $3 and $4 (before/after) are NULL for this request; pgbench cannot bind NULL, so
--     they are null literals (PostgreSQL folds them away, as in the server's custom plans).
\set n random(0, :targets - 1)
\set t :n / :conversations
\set limit 51
\startpipeline
begin read only;
set local role frontdesk_service;
@TENANT_SETTINGS@
set local frontdesk.key_scope = 'full';
select app.assert_principal();
select m.*, c.id as conversation from app.conversations c
                 left join lateral (
                     select id, conversation_id, role, content, prompt_tokens, completion_tokens, total_tokens,
    model, provider, cost_usd, latency_ms, action_taken, questions_asked, delegation_plan, metadata,
    created_at, redacted_at, redacted_by, cost_source from app.messages m
                     where m.tenant_id = c.tenant_id and m.conversation_id = c.id
                       and (null::uuid is null or m.id < null::uuid) and (null::uuid is null or m.id > null::uuid)
                     order by m.id desc limit :limit) m on true
                 where c.tenant_id = (select tenant_id from bench.targets where n = :n)
                   and c.id = (select conversation_id from bench.targets where n = :n);
commit;
\endpipeline
