-- The one-click unsubscribe load of `make bench` (tests/bench.py starts it):
--   BENCH_TOKENS=paths.txt BENCH_THREADS=2 BENCH_DONE=folder wrk -t2 -c50 -s this.lua URL
-- Each line of BENCH_TOKENS (an /unsubscribe/TOKEN path) is posted exactly once: thread k of T
-- takes lines k, k+T, ... A connection reserves a line in delay(), which wrk calls before each
-- request; one that finds none left idles until its thread has every answer and stops. wrk's main
-- thread sleeps for the whole -d, so each finished thread leaves a file in BENCH_DONE and the
-- harness ends wrk (SIGINT) once all have; done() then prints one JSON line after "BENCH ".
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]])

local CLOCK_MONOTONIC = 1
local IDLE_MS = 3600 * 1000
local clock = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  local count = tonumber(os.getenv("BENCH_THREADS"))
  paths = {}
  local line = 0
  for path in io.lines(os.getenv("BENCH_TOKENS")) do
    if line % count == id - 1 then
      paths[#paths + 1] = path
    end
    line = line + 1
  end
  share, reserved, posted, answered, non2xx = #paths, 0, 0, 0, 0
  started_us, finished_us = 0, 0
  wrk.method = "POST"
  wrk.body = "List-Unsubscribe=One-Click"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function delay()
  if reserved < share then
    reserved = reserved + 1
    return 0
  end
  return IDLE_MS
end

function request()
  if posted < reserved then
    posted = posted + 1
    if started_us == 0 then
      started_us = now_us()
    end
    return wrk.format(nil, paths[posted])
  end
  -- wrk's check of the script at start-up (never sent), or a request written again after a socket
  -- error: a path that changes nothing, so no token is ever posted twice (it answers 4xx).
  return wrk.format(nil, "/unsubscribe/none")
end

function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
  if answered == share then
    finished_us = now_us()
    local done = io.open(os.getenv("BENCH_DONE") .. "/" .. id, "w")
    done:write("done\n")
    done:close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local each = {}
  local first, last, non2xx_all, posted_all, unfinished = math.huge, 0, 0, 0, false
  for _, thread in ipairs(threads) do
    local started, finished = thread:get("started_us"), thread:get("finished_us")
    first = math.min(first, started)
    last = math.max(last, finished)
    unfinished = unfinished or finished == 0
    non2xx_all = non2xx_all + thread:get("non2xx")
    posted_all = posted_all + thread:get("posted")
    each[#each + 1] = string.format(
      '{"id":%d,"share":%d,"posted":%d,"answered":%d,"non2xx":%d,"seconds":%.4f}',
      thread:get("id"), thread:get("share"), thread:get("posted"), thread:get("answered"),
      thread:get("non2xx"), (finished - started) / 1e6
    )
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"posted":%d,"non2xx":%d,"wall_seconds":%.4f,"wrk_seconds":%.4f,'
      .. '"latency_ms":{"p50":%.3f,"p90":%.3f,"p99":%.3f,"max":%.3f,"mean":%.3f},'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"threads":[%s]}\n',
    summary.requests, posted_all, non2xx_all, unfinished and -1 or (last - first) / 1e6,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.max / 1e3, latency.mean / 1e3,
    errors.connect, errors.read, errors.write, errors.timeout, table.concat(each, ",")
  ))
end
