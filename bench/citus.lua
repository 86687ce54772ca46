-- wrk script of bench/citus.sh: each request goes to a random conversation of the
-- dataset, with its tenant's API key.
--   CBENCH_MODE=get   GET  /v1/tenants/{t}/conversations/{c}/messages?limit=50
--   CBENCH_MODE=post  POST /v1/tenants/{t}/conversations/{c}/messages
-- CBENCH_TARGETS: one conversation a line, "tenant id <TAB> key secret <TAB> conversation id".
-- The requests are built once per thread in init(); request() only picks one.
local mode = os.getenv("CBENCH_MODE") or "get"
local targets = os.getenv("CBENCH_TARGETS") or error("CBENCH_TARGETS must name the targets file")

local next_thread = 1
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

local requests, count = {}, 0
local body = '{"role":"user","content":"Could we book a table for two tomorrow evening, please? '
  .. 'One of us is vegetarian.","prompt_tokens":12,"completion_tokens":7,'
  .. '"model":"gpt-4o-mini","provider":"openai","cost_usd":"0.0004"}'

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  for line in io.lines(targets) do
    local tenant, key, conversation = line:match("^(%S+)\t(%S+)\t(%S+)$")
    if tenant then
      local path = "/v1/tenants/" .. tenant .. "/conversations/" .. conversation .. "/messages"
      local headers = { ["Authorization"] = "Bearer " .. key, ["Accept"] = "application/json" }
      count = count + 1
      if mode == "get" then
        requests[count] = wrk.format("GET", path .. "?limit=50", headers)
      else
        headers["Content-Type"] = "application/json"
        requests[count] = wrk.format("POST", path, headers, body)
      end
    end
  end
  if count == 0 then error("no targets in " .. targets) end
end

function request()
  return requests[math.random(count)]
end
