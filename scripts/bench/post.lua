-- wrk script for scripts/bench-receivers.sh: POSTs the file $BENCH_BODY with the
-- fullup-signature $BENCH_SIGNATURE on every request. wrk counts non-2xx answers itself.
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["fullup-signature"] = assert(os.getenv("BENCH_SIGNATURE"))
