-- wrk load for scripts/bench: the listing of namespace "bench-list"
-- (1,000 keys, one page). WS and TOKEN come from the environment.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local path = "/api2/" .. os.getenv("WS") .. "/bench-list"
local headers = { ["Authorization"] = "Bearer " .. os.getenv("TOKEN") }

request = function()
  return wrk.format("GET", path, headers)
end
