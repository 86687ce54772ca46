-- wrk script for the message benchmarks (bench/messages.sh): each request goes to a random
-- conversation of the whole dataset, with that conversation's tenant's API key.
--
--   BENCH_MODE=get       GET  /v1/tenants/{tenant}/conversations/{id}/messages?limit=50
--   BENCH_MODE=post      POST /v1/tenants/{tenant}/conversations/{id}/messages with
--                        {"role":"user","content":…,"prompt_tokens":12,"completion_tokens":7,
--                         "model":"gpt-4o-mini","provider":"openai","cost_usd":"0.0004"}
--   BENCH_MODE=providers GET  /v1/tenants/{tenant}/analytics/providers?days=30
--   BENCH_MODE=today     GET  /v1/tenants/{tenant}/usage/today
-- (the last two: the tenant of a random conversation, so tenants are drawn alike)
--
-- BENCH_TARGETS names the file messages.sh writes, one conversation a line:
--   tenant_n <TAB> tenant id <TAB> API key secret <TAB> conversation id
-- BENCH_CONTENTS names messages_contents.txt: tenant n posts line (n mod lines) + 1, the
-- same content as its pgbench script.
--
-- Every request is built once per thread in init(); request() only picks one, so the Lua
-- work per request stays small (wrk shares the two cores with the server and PostgreSQL).

local mode = os.getenv("BENCH_MODE") or "get"
local targets_path = os.getenv("BENCH_TARGETS")
local contents_path = os.getenv("BENCH_CONTENTS")
if targets_path == nil then
  error("BENCH_TARGETS must name the targets file")
end
if mode ~= "get" and mode ~= "post" and mode ~= "providers" and mode ~= "today" then
  error("BENCH_MODE must be get, post, providers or today")
end

-- A JSON string literal (the contents are plain text, but escape what JSON requires).
local function json_string(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. escaped .. '"'
end

-- Give each thread its own random sequence.
local next_thread = 1
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

local requests = {}
local count = 0

function init(args)
  math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
  for _ = 1, 10 do math.random() end

  local contents = {}
  if mode == "post" then
    if contents_path == nil then
      error("BENCH_CONTENTS must name the contents file for BENCH_MODE=post")
    end
    for line in io.lines(contents_path) do
      if line ~= "" then contents[#contents + 1] = line end
    end
  end

  for line in io.lines(targets_path) do
    local n, tenant, key, conversation = line:match("^(%d+)\t(%S+)\t(%S+)\t(%S+)$")
    if n then
      local path = "/v1/tenants/" .. tenant .. "/conversations/" .. conversation .. "/messages"
      local headers = { ["Authorization"] = "Bearer " .. key, ["Accept"] = "application/json" }
      count = count + 1
      if mode == "get" then
        requests[count] = wrk.format("GET", path .. "?limit=50", headers)
      elseif mode == "providers" then
        requests[count] = wrk.format("GET", "/v1/tenants/" .. tenant .. "/analytics/providers?days=30", headers)
      elseif mode == "today" then
        requests[count] = wrk.format("GET", "/v1/tenants/" .. tenant .. "/usage/today", headers)
      else
        headers["Content-Type"] = "application/json"
        local body = '{"role":"user","content":' .. json_string(contents[tonumber(n) % #contents + 1])
          .. ',"prompt_tokens":12,"completion_tokens":7,"model":"gpt-4o-mini","provider":"openai","cost_usd":"0.0004"}'
        requests[count] = wrk.format("POST", path, headers, body)
      end
    end
  end
  if count == 0 then
    error("no targets in " .. targets_path)
  end
end

function request()
  return requests[math.random(count)]
end
