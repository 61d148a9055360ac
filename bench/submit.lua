-- wrk script: POST /v1/erasure-requests with a subject id that is unique per
-- request (run id, thread number, counter), so every answer should be 201.
-- A 200 means the subject already had an open request (a duplicate id).
--
-- Usage: wrk -s bench/submit.lua URL -- API_KEY RUN_ID
-- done() prints one line "BENCH_WRK {json}" for bench/helper.py.

local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  -- Sets the global `tid` in that thread's own Lua state.
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local prefix, counter = "", 0

function init(args)
  local key, run = args[1], args[2] or tostring(os.time())
  prefix = '{"subject_id":"bench-' .. run .. "-" .. tostring(tid) .. "-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  n201, n200, nother = 0, 0, 0
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, prefix .. counter .. '"}')
end

function response(status, headers, body)
  if status == 201 then
    n201 = n201 + 1
  elseif status == 200 then
    n200 = n200 + 1
  else
    nother = nother + 1
  end
end

function done(summary, latency, requests)
  local c201, c200, cother = 0, 0, 0
  for _, t in ipairs(threads) do
    c201 = c201 + t:get("n201")
    c200 = c200 + t:get("n200")
    cother = cother + t:get("nother")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"requests":%d,"duration_us":%d,"n201":%d,"n200":%d,"nother":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, c201, c200, cother,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
