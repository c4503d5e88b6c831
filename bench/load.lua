-- wrk script of bench/load.sh: POST /token with a caller JWT from a pool, one JSON body.
--
-- Environment (all set by load.sh):
--   TOKENS      file of caller JWTs, one per line (examples/callers.rs)
--   THREADS     wrk's -t; thread i of N uses lines i, i+N, i+2N, ... so no two threads share a
--               caller
--   MODE        distinct: every request takes the next unused token (each caller asks once);
--               twice:    every token is sent exactly twice, the second time after GAP to 2*GAP
--                         other requests of the same thread (each caller asks twice)
--   GAP         see twice (default 512)
--   TOKEN_PATH  default /token
--   BODY        default {"grants":["voice","video"],"room":"support-lobby"}
--   STRICT      1: look at every response and count any status outside 200-299 (wrk itself
--               counts only statuses >= 400, and parsing responses in Lua costs load-generator
--               CPU, so timing runs leave this off)
--
-- done() prints one line, "RESULT key=value ...", that load.sh parses. `wrapped` counts requests
-- that had to reuse a token because the pool ran out: a distinct-mode run with wrapped > 0 is
-- not a distinct-caller run.

-- wrk calls each thread's init() from its main thread and starts that thread's load at once,
-- before the next thread's init(); the run's clock starts after the last. So init() only opens
-- the pool: reading a pool of 600,000 tokens there took about a second per thread, in which the
-- first thread's requests were sent and counted, outside the clock, without the second thread
-- and beside a busy main thread. Each request reads its token from the file instead (buffered,
-- one line).

local tokens_file = os.getenv("TOKENS")
local mode = os.getenv("MODE") or "distinct"
local gap = tonumber(os.getenv("GAP") or "512")
local token_path = os.getenv("TOKEN_PATH") or "/token"
local body = os.getenv("BODY") or '{"grants":["voice","video"],"room":"support-lobby"}'
local strict = os.getenv("STRICT") == "1"

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

-- Skips n lines of the pool.
local function skip(n)
   for _ = 1, n do
      pool:read("*l")
   end
end

function init(args)
   nthreads = tonumber(os.getenv("THREADS") or "1")
   pool = assert(io.open(tokens_file))
   skip(id)
   headers = { ["Content-Type"] = "application/json", ["Authorization"] = "" }
   first = true
   reusing = false
   held = {} -- twice mode: tokens sent once, by index, until their second ask
   sent = 0
   wrapped = 0
   non2xx = 0
end

-- This thread's next token from the pool (lines id, id + N, id + 2N, ...), from the start again
-- once the pool runs out.
local function next_token()
   local token = pool:read("*l")
   if not token then
      if first then
         error("no tokens for thread " .. id .. " in " .. tostring(tokens_file))
      end
      reusing = true
      pool:seek("set", 0)
      skip(id)
      token = pool:read("*l")
   end
   first = false
   skip(nthreads - 1)
   if reusing then
      wrapped = wrapped + 1
   end
   return token
end

-- Index (0-based) of the token for this thread's request number n.
local function token_index(n)
   if mode ~= "twice" or n < gap then
      return n
   end
   local m = n - gap
   if m % 2 == 0 then
      return gap + m / 2 -- a new caller
   end
   return (m - 1) / 2 -- the second ask of an earlier caller
end

function request()
   local k = token_index(sent)
   sent = sent + 1
   local token = held[k]
   if token then
      held[k] = nil
   else
      token = next_token()
      if mode == "twice" then
         held[k] = token
      end
   end
   headers["Authorization"] = "Bearer " .. token
   return wrk.format("POST", token_path, headers, body)
end

if strict then
   function response(status, headers, body)
      if status < 200 or status > 299 then
         non2xx = non2xx + 1
         if non2xx <= 3 then
            io.stderr:write("status " .. status .. ": " .. tostring(body) .. "\n")
         end
      end
   end
end

function done(summary, latency, requests)
   local wrapped_total, non2xx_total = 0, 0
   for _, thread in ipairs(threads) do
      wrapped_total = wrapped_total + (thread:get("wrapped") or 0)
      non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d "
         .. "timeout=%d non2xx=%d wrapped=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
      e.timeout, non2xx_total, wrapped_total, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
