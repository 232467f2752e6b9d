-- wrk script for bench/run.py: gives every create its own x-request-id, cycles replays over a
-- set of existing request ids, stops each thread after a request budget, and prints one
-- BENCH_JSON line with the figures bench/run.py reads.
--
-- wrk ... -s bench/load.lua URL -- MODE EXPECTED_STATUS MAX_REQUESTS_PER_THREAD BODY_FILE ARG
--   MODE create: ARG is a prefix, request ids are PREFIX-<thread>-<n>
--   MODE replay: ARG is a file of request ids (one a line), POSTed again with the same body
--   MODE lookup: ARG is a file of request ids, each GET appended to the URL's path
-- The API key comes from the BENCH_API_KEY environment variable, so it is never on a command line.

local threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_id", thread_count)
   table.insert(threads, thread)
end

local function read_file(path)
   local file = assert(io.open(path, "rb"))
   local data = file:read("*a")
   file:close()
   return data
end

function init(args)
   mode = args[1]
   expected_status = tonumber(args[2])
   budget = tonumber(args[3])
   body = nil
   if args[4] ~= "-" then
      body = read_file(args[4])
   end
   prefix = args[5]
   ids = {}
   if mode ~= "create" then
      for line in io.lines(args[5]) do
         table.insert(ids, line)
      end
   end
   sent = 0
   answered = 0
   ok_count = 0
   bad_count = 0
   headers = {["Content-Type"] = "application/json"}
   local api_key = os.getenv("BENCH_API_KEY")
   if api_key then
      headers["x-api-key"] = api_key
   end
end

function request()
   sent = sent + 1
   if mode == "create" then
      headers["x-request-id"] = prefix .. "-" .. thread_id .. "-" .. sent
      return wrk.format("POST", wrk.path, headers, body)
   end
   local id = ids[(sent * 7 + thread_id) % #ids + 1]
   if mode == "replay" then
      headers["x-request-id"] = id
      return wrk.format("POST", wrk.path, headers, body)
   end
   return wrk.format("GET", wrk.path .. id, headers)
end

function response(status, response_headers, response_body)
   answered = answered + 1
   if status == expected_status then
      ok_count = ok_count + 1
   else
      bad_count = bad_count + 1
   end
   if answered >= budget then
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local ok, bad = 0, 0
   for _, thread in ipairs(threads) do
      ok = ok + thread:get("ok_count")
      bad = bad + thread:get("bad_count")
   end
   local errors = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "socket_errors": %d, "expected": %d, ' ..
      '"unexpected": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, errors.connect + errors.read + errors.write + errors.timeout,
      ok, bad, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
