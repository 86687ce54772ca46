-- pgbench template: the SQL transaction the server runs for
-- GET /v1/tenants/{tenant}/conversations/{id}/messages?limit=50 with a tenant API key
-- (crates/frontdesk-pg/src/tx.rs for the preamble, crates/frontdesk-core/src/conversations/messages.rs
-- `history` for the statement; keep them in step). One pipeline, commit included: one
-- round trip, as the server sends it.
--
-- Each transaction picks a random conversation n of bench.targets (n = tenant number ×
-- conversations per tenant + conversation number). messages.sh passes -D targets=<rows>
-- -D conversations=<per tenant>, the context's values as the server binds them for an API
-- key (-D caller_kind=key -D key_scope=full; user_id and member_role are empty, which
-- pgbench's -D refuses, so messages.sh puts before \startpipeline a \gset that reads them
-- once per connection; and
-- -D tenant_<t>=<tenant id> -D key_<t>=<its API key id> for every tenant t), and replaces
-- @CONTEXT@ with a binary tree of \if's over the tenant number t whose leaves are the
-- server's context statement with that tenant's variables:
--     select set_config('frontdesk.caller_kind', :caller_kind, true),
--            set_config('frontdesk.tenant_id', :tenant_<t>, true), …,
--            set_config('frontdesk.key_id', :key_<t>, true), …, app.assert_principal();
-- (pgbench cannot pick a variable by number, so each tenant's copy of the statement is
-- its own prepared statement, while the server prepares it once per connection for all
-- tenants; the history statement is one prepared statement for all, as on the server).
-- pgbench logs in as frontdesk_app, like the server's request pool.
--
-- Where this differs from what the server sends, unavoidably:
--   * The server sends `begin read only` and `commit` as simple queries (parsed each
--     time) and ends each of its messages with a Sync (four ReadyForQuery, four flushes);
--     pgbench prepares them and sends one Sync at \endpipeline.
--   * The context statement is one of 100 prepared copies (see above): each is planned
--     afresh for its first five executions on a connection (custom plans; a select
--     without FROM, cheap to plan).
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
@CONTEXT@
select m.*, c.id as conversation from app.conversations c
                 left join lateral (
                     select id, conversation_id, role, content, prompt_tokens, completion_tokens, total_tokens,
    model, provider, cost_usd, latency_ms, action_taken, questions_asked, delegation_plan, metadata,
    created_at, redacted_at, redacted_by, cost_source from app.messages m
                     where m.tenant_id = (select tenant_id from bench.targets where n = :n) and m.conversation_id = c.id
                       and (null::uuid is null or m.id < null::uuid) and (null::uuid is null or m.id > null::uuid)
                     order by m.id desc limit :limit) m on true
                 where c.tenant_id = (select tenant_id from bench.targets where n = :n)
                   and c.id = (select conversation_id from bench.targets where n = :n);
commit;
\endpipeline
