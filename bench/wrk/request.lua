-- One script for every variant: the request comes from the environment, so no
-- key is ever written to a file. Prints one JSON line with the figures at the end.
--
-- BENCH_POOL_PATH (a pipe the bench writes into, never a file): lines "<path> <key>", and each request
-- calls one of them, drawn with a Zipf distribution of exponent BENCH_ZIPF_S (rank = line number), or
-- in order, round and round, without it.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local header_name = os.getenv("BENCH_HEADER_NAME")
if header_name and header_name ~= "" then
  wrk.headers[header_name] = os.getenv("BENCH_HEADER_VALUE")
end
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local pool_path = os.getenv("BENCH_POOL_PATH") or ""
local pool, cdf, next_index = {}, nil, 0

-- Read in init, which runs in the thread's own Lua state only: the main state must not drain the pipe.
init = function(args)
  if pool_path == "" then return end
  for line in io.lines(pool_path) do
    local path, key = line:match("^(%S+) (%S+)$")
    if path then pool[#pool + 1] = {path, "Bearer " .. key} end
  end
  local s = tonumber(os.getenv("BENCH_ZIPF_S") or "")
  if s then
    cdf = {}
    local total = 0
    for i = 1, #pool do
      total = total + i ^ (-s)
      cdf[i] = total
    end
    for i = 1, #pool do cdf[i] = cdf[i] / total end
  end
  math.randomseed(tonumber(os.getenv("BENCH_SEED") or "1"))
end

if pool_path ~= "" then
  request = function()
    local i
    if cdf then
      local r, lo, hi = math.random(), 1, #cdf
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if cdf[mid] < r then lo = mid + 1 else hi = mid end
      end
      i = lo
    else
      next_index = next_index % #pool + 1
      i = next_index
    end
    wrk.headers["Authorization"] = pool[i][2]
    return wrk.format(nil, pool[i][1])
  end
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
