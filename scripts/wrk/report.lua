-- Loaded by each wrk load of scripts/bench (with dofile, from WRK_DIR): each
-- thread its own random keys, and at the end one line
-- "requests/s p99_ms non_2xx errors requests" on stdout.

-- Every thread's Lua state starts from the same seed: without this, both
-- threads would send the same keys at the same moments.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end

init = function(args)
  math.randomseed(os.time() * 100 + id)
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("%.1f %.3f %d %d %d\n", summary.requests / seconds,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout,
    summary.requests))
end
