-- wrk load for scripts/bench: GET of a random key 0..9999 of namespace
-- "bench" (the keys `hulykvs bench` seeds). WS and TOKEN come from the
-- environment.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local path = "/api2/" .. os.getenv("WS") .. "/bench/"
local headers = { ["Authorization"] = "Bearer " .. os.getenv("TOKEN") }

request = function()
  return wrk.format("GET", path .. math.random(0, 9999), headers)
end
