-- wrk script of bench/queue: GET the URL given to wrk with one extra header
-- (the support token, or the dashboard's session cookie), counting 200s and
-- anything else.
--
-- Usage: wrk -s bench/queue.lua URL -- HEADER-NAME HEADER-VALUE
-- done() prints one line "BENCH_WRK {json}" for bench/queue_scale.py.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  if args[1] and args[2] then
    wrk.headers[args[1]] = args[2]
  end
  n200, nother = 0, 0
end

function response(status, headers, body)
  if status == 200 then
    n200 = n200 + 1
  else
    nother = nother + 1
  end
end

function done(summary, latency, requests)
  local c200, cother = 0, 0
  for _, t in ipairs(threads) do
    c200 = c200 + t:get("n200")
    cother = cother + t:get("nother")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"requests":%d,"duration_us":%d,"bytes":%d,"n200":%d,"nother":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, c200, cother,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
