-- The feed load of `make bench` (tests/bench.py starts it):
--   BENCH_ETAG='"..."' wrk -t2 -c50 -d10s --latency -s this.lua URL
-- Every other request carries the feed's ETag, as a feed reader that has it does (304, no body);
-- the rest ask afresh (200, the whole feed). done() prints one JSON line after "BENCH ".
local counter = 0
local etag = os.getenv("BENCH_ETAG")

function request()
  counter = counter + 1
  if counter % 2 == 0 then
    return wrk.format("GET", nil, { ["If-None-Match"] = etag })
  end
  return wrk.format("GET")
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.3f, "p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"bad_status": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout))
end
