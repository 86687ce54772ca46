-- wrk script: GET /healthz, the HTTP stack without authentication or the database.
-- run.sh runs it with BENCH_BASELINE=1, to split the frontdesk CPU of a GET tenant into
-- what serving any request costs and what authentication and the database client add.
wrk.method = "GET"
wrk.path = "/healthz"
wrk.headers["Accept"] = "application/json"
