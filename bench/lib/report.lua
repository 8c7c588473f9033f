-- wrk script for the anubis bench: sets the request from environment variables and prints
-- one machine-readable line (prefix WRK_JSON) with counts and latency percentiles (µs).
local method = os.getenv("WRK_METHOD")
if method ~= nil and method ~= "" then wrk.method = method end
local size = tonumber(os.getenv("WRK_BODY_BYTES") or "0") or 0
if size > 0 then
  wrk.body = string.rep("x", size)
  wrk.headers["Content-Type"] = "application/octet-stream"
end
if os.getenv("WRK_CLOSE") == "1" then wrk.headers["Connection"] = "close" end
-- A pause between a response and the next request on each connection (paced load).
-- WRK_DELAY_RANDOM=1 draws each pause from an exponential distribution with that mean. That is
-- NOT Poisson arrivals: delay() is in whole ms and wrk's timers fire on ms ticks, so the
-- connections whose pauses end in the same tick send together (at ≈ 4,900 req/s over 50
-- connections, 59% of the gaps between arrivals under 10 µs, Poisson 4.8%; clumps of up to
-- 15–20). Poisson arrivals come from bench/tools/poisson-load.c. A fixed pause keeps every
-- connection in step, and the requests arrive as bursts of one per connection.
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0") or 0
if pause > 0 then
  if os.getenv("WRK_DELAY_RANDOM") == "1" then
    math.randomseed(tonumber(os.getenv("WRK_SEED") or "1") or 1)
    delay = function() return math.floor(-pause * math.log(1 - math.random()) + 0.5) end
  else
    delay = function() return pause end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"durationUs":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latencyUs":{"min":%d,"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
