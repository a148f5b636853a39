-- wrk load for scripts/bench-layers: GET of a random key 0..9999 of namespace
-- "bench", each request with a token not sent before, so none comes from the
-- server's token cache. The tokens are lines of TOKENS_FILE: a warmup run
-- (TOKENS_PHASE=warm) takes the first fifth, the measured run the rest, and
-- each thread every other one of its part.
dofile(os.getenv("WRK_DIR") .. "/report.lua")
local path = "/api2/" .. os.getenv("WS") .. "/bench/"
local tokens = {}
local next_token = 1

local report_init = init
init = function(args)
  report_init(args)
  local all = {}
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    all[#all + 1] = line
  end
  local fifth = math.floor(#all / 5)
  local first, last = fifth + 1, #all
  if os.getenv("TOKENS_PHASE") == "warm" then
    first, last = 1, fifth
  end
  for i = first + id - 1, last, 2 do
    tokens[#tokens + 1] = all[i]
  end
end

request = function()
  local token = tokens[next_token]
  if token == nil then
    error("TOKENS_FILE ran out of tokens: raise FRESH_TOKENS")
  end
  next_token = next_token + 1
  return wrk.format("GET", path .. math.random(0, 9999), { ["Authorization"] = "Bearer " .. token })
end
