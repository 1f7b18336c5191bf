-- bench/run.sh (WARM=1): POST /v1/keys/verify once for each of the N seeded keys
-- (kgb_<i>.benchsecret<i>, 0 <= i < N), unmeasured, so that a credential cache large enough to
-- hold them all starts the verify row with every key in it. Thread t of T asks the keys
-- i = t, t + T, t + 2T, ... and stops once all of its keys were answered.
-- Usage: wrk -t T ... -s bench/walk.lua URL -- API_KEY N T
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  n = assert(tonumber(args[2]), "N")
  nthreads = assert(tonumber(args[3]), "T")
  headers = { ["X-API-Key"] = args[1], ["Content-Type"] = "application/json" }
  next_key = tid
  answered = 0
  mine = (tid < n) and math.floor((n - 1 - tid) / nthreads) + 1 or 0
end

function request()
  local i = next_key
  next_key = next_key + nthreads
  if next_key >= n then
    -- Every key of this thread was sent: repeat its first while the last answers arrive.
    next_key = tid
  end
  return wrk.format("POST", "/v1/keys/verify", headers, '{"key":"kgb_' .. i .. '.benchsecret' .. i .. '","scope":"read"}')
end

function response(status)
  answered = answered + 1
  if answered >= mine then
    wrk.thread:stop()
  end
end
