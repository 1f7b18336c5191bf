-- bench/run.sh: a fixed POST (the ceilings, and the contended use of one key).
-- Usage: wrk ... -s bench/post.lua URL -- [BODY]
-- With a BODY, it is sent as application/json; without one, the request has no body.
-- Other headers come from wrk's -H.
function init(args)
  wrk.method = "POST"
  if args[1] ~= nil and args[1] ~= "" then
    wrk.body = args[1]
    wrk.headers["Content-Type"] = "application/json"
  end
end
