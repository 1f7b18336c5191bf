-- bench/run.sh: POST /v1/keys, each request creating a key of its own name.
-- Usage: wrk ... -s bench/create.lua URL -- API_KEY
-- (URL: keygate's .../v1/keys, or a ceiling's)
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  headers = { ["X-API-Key"] = args[1], ["Content-Type"] = "application/json" }
  counter = 0
end

function request()
  counter = counter + 1
  local body = '{"name":"bench ' .. (tid or 0) .. "-" .. counter .. '","scopes":["read"]}'
  return wrk.format("POST", nil, headers, body)
end
