-- wrk script of benchmarks/serving.py: POST the JSON bodies of the file named by $BODIES (one body per
-- line) to $WRK_PATH, cycling through them, and print one machine-readable RESULT line at the end.
local bodies = {}
local next_body = 1

function init(args)
  for line in io.lines(os.getenv("BODIES")) do
    if #line > 0 then
      bodies[#bodies + 1] = line
    end
  end
  wrk.method = "POST"
  wrk.path = os.getenv("WRK_PATH") or "/predict"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
