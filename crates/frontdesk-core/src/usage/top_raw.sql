-- The contacts or conversations that spent most in a period, from the messages and usage
-- events themselves: the daily rollups have no contact or conversation. $1 the tenant;
-- $2, $3 the period's first and end instants (created_at, end excluded); $4, $5 the same
-- as UUIDv7 bounds widened by an hour (ids sort by their time, so the primary keys are
-- read as a range, not the tenant's every row); $6 the assistant, $7 the provider (null:
-- any); $8 how many. {id} and {name} are the group: the contact, or the conversation.
with
-- Each message of the period counts for its conversation and the conversation's assistant
-- (as in the rollups): a request when it has tokens or a cost.
messages as (
    select m.conversation_id, c.assistant_id, (m.cost_source is not null)::int as requests,
           m.total_tokens::bigint as tokens, coalesce(m.cost_usd, 0) as cost
    from app.messages m
    join app.conversations c on c.tenant_id = $1 and c.id = m.conversation_id
    where m.tenant_id = $1 and m.id >= $4 and m.id < $5 and m.created_at >= $2 and m.created_at < $3
      and ($7::text is null or m.provider = $7)
),
-- Each usage event recorded against a conversation: a request, with its own assistant.
events as (
    select e.conversation_id, e.assistant_id, 1 as requests,
           (coalesce(e.prompt_tokens, 0) + coalesce(e.completion_tokens, 0))::bigint as tokens, e.cost_usd as cost
    from app.usage_events e
    where e.tenant_id = $1 and e.id >= $4 and e.id < $5 and e.created_at >= $2 and e.created_at < $3
      and e.conversation_id is not null and ($7::text is null or e.provider = $7)
),
facts as (
    select * from messages where $6::uuid is null or assistant_id = $6
    union all
    select * from events where $6::uuid is null or assistant_id = $6
)
-- Grouped by contact or conversation; a contact the caller may not see (a member sees
-- none) counts as none.
select {id} as id, {name} as name, sum(f.requests)::bigint as requests, sum(f.tokens)::bigint as tokens,
       sum(f.cost) as cost
from facts f
join app.conversations c on c.tenant_id = $1 and c.id = f.conversation_id
left join app.contacts k on k.tenant_id = $1 and k.id = c.contact_id
group by 1, 2
order by cost desc, tokens desc, id
limit $8
