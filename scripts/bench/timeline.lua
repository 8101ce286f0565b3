-- wrk script: a timeline of requests in 250 ms buckets, written at the end.
--
--   BENCH_TIMELINE=OUT_FILE BENCH_T0_MS=T0 wrk ... -s timeline.lua URL
--
-- T0 is the epoch millisecond the bench calls time 0 (it marks its reloads on the same
-- clock). Each bucket counts requests sent, 2xx answers and other answers. wrk has no hook
-- for socket errors, but a failed request is sent and never answered, so "sent - answered"
-- per bucket shows them (give or take the requests in flight at the bucket's edges, at
-- most one per connection). OUT_FILE gets one line per bucket:
--   seconds  2xx/s  non-2xx/s  unanswered/s
-- and stdout one summary line: "timeline: requests N non2xx N errors N p50_ms X p99_ms Y".
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local BUCKET_MS = 250

local function now_ms()
  ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME, the bench's `date +%s%N`
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

local t0 = tonumber(os.getenv("BENCH_T0_MS")) or now_ms()
sent, ok, bad = {}, {}, {}

local function bucket()
  return math.floor((now_ms() - t0) / BUCKET_MS)
end

local function bump(counts, b)
  counts[b] = (counts[b] or 0) + 1
end

function request()
  bump(sent, bucket())
  return wrk.format(nil, "/")
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    bump(ok, bucket())
  else
    bump(bad, bucket())
  end
end

function done(summary, latency, requests)
  local total = { sent = {}, ok = {}, bad = {} }
  local first, last = nil, nil
  for _, thread in ipairs(threads) do
    for name, into in pairs(total) do
      for b, n in pairs(thread:get(name) or {}) do
        into[b] = (into[b] or 0) + n
        if first == nil or b < first then first = b end
        if last == nil or b > last then last = b end
      end
    end
  end
  local out = assert(io.open(os.getenv("BENCH_TIMELINE") or "timeline.dat", "w"))
  local per_s = 1000 / BUCKET_MS
  for b = (first or 0), (last or -1) do
    local s, o, x = total.sent[b] or 0, total.ok[b] or 0, total.bad[b] or 0
    local lost = math.max(0, s - o - x)
    out:write(string.format("%.2f %d %d %d\n", b * BUCKET_MS / 1000, o * per_s, x * per_s, lost * per_s))
  end
  out:close()
  local e = summary.errors
  io.write(string.format("timeline: requests %d non2xx %d errors %d p50_ms %.2f p99_ms %.2f\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
