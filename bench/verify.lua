-- bench/run.sh: POST /v1/keys/verify (to the URL wrk is given), each request with a key picked at random out of the N keys
-- that bench/helper.py seeded (kgb_<i>.benchsecret<i>, 0 <= i < N), and a share of unknown keys.
-- Usage: wrk ... -s bench/verify.lua URL -- API_KEY N [UNKNOWN_SHARE, default 0.1]
-- (URL: keygate's .../v1/keys/verify, or a ceiling's, which then gets the very same requests)
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  n = assert(tonumber(args[2]), "N")
  unknown = tonumber(args[3] or "0.1")
  headers = { ["X-API-Key"] = args[1], ["Content-Type"] = "application/json" }
  math.randomseed(os.time() * 7919 + (tid or 0) * 104729)
end

function request()
  local i = math.random(0, n - 1)
  local key
  if math.random() < unknown then
    key = "kgb_" .. i .. ".unknown" .. i
  else
    key = "kgb_" .. i .. ".benchsecret" .. i
  end
  return wrk.format("POST", nil, headers, '{"key":"' .. key .. '","scope":"read"}')
end
