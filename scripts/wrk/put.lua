-- wrk load for scripts/bench: PUT of a 100-byte value at a random key
-- 0..9999 of namespace "bench". WS and TOKEN come from the environment.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local path = "/api2/" .. os.getenv("WS") .. "/bench/"
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  ["Content-Type"] = "application/octet-stream",
}
local body = string.rep("v", 100)

request = function()
  return wrk.format("PUT", path .. math.random(0, 9999), headers, body)
end
