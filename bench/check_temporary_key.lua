-- bench/run.sh: SuperOffice POST /api/v1/Agents/Person/CheckTemporaryKey by SOTicket, each
-- request with a temporary key picked at random out of a file (one key a line, created over HTTP
-- by bench/helper.py), and a share of unknown keys.
-- Usage: wrk ... -s bench/check_temporary_key.lua URL -- TICKET KEYS_FILE [UNKNOWN_SHARE, default 0.1]
-- (URL: keygate's .../Agents/Person/CheckTemporaryKey, or a ceiling's)
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  headers = { ["Authorization"] = "SOTicket " .. args[1], ["Content-Type"] = "application/json" }
  keys = {}
  for line in assert(io.open(args[2])):lines() do
    if #line > 0 then
      keys[#keys + 1] = line
    end
  end
  assert(#keys > 0, "no keys in " .. args[2])
  unknown = tonumber(args[3] or "0.1")
  math.randomseed(os.time() * 7919 + (tid or 0) * 104729)
end

function request()
  local key
  if math.random() < unknown then
    key = "benchunknown" .. math.random(1, 1000000000)
  else
    key = keys[math.random(1, #keys)]
  end
  return wrk.format("POST", nil, headers, '{"TemporaryKey":"' .. key .. '"}')
end
