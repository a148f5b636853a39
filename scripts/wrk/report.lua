-- Loaded by each wrk load of scripts/bench (with dofile, from WRK_DIR): at the
-- end, one line "requests/s p99_ms non_2xx errors" on stdout.
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format("%.1f %.3f %d %d\n", summary.requests / seconds,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
