-- wrk script: one authenticated read, GET /v1/tenants/{tenant} with a user JWT.
-- run.sh passes the token and the tenant id in the environment.
local token = os.getenv("BENCH_TOKEN")
local tenant = os.getenv("BENCH_TENANT")
if token == nil or tenant == nil then
  error("BENCH_TOKEN and BENCH_TENANT must be set")
end

wrk.method = "GET"
wrk.path = "/v1/tenants/" .. tenant
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Accept"] = "application/json"
