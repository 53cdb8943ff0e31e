---@meta queue
-- LuaLS stubs for `require "queue"` (lua/queue.lua): the shared URL frontier on Redis Streams.
-- DESIGN.md "queue"; docs/scale-out.md.

---@class queue
---@field RETRY_CONSUMER string  the consumer that holds failed entries until their next delivery
local queue = {}

---@class QueueOptions
---@field url? string             redis://[[user]:password@]host[:port][/db] (REDIS_URL, else redis://127.0.0.1:6379); no TLS: see docs/scale-out.md
---@field stream string           the stream's key; keys <stream>:results, :dead, :seen, :errors, :host:<host>, :rate:<host> go with it (Redis Cluster: "{crawl}")
---@field group? string           consumer group ("fetchers")
---@field consumer? string        this worker's name in the group (hostname:pid)
---@field lease? number           seconds before an entry of a stopped worker is taken over (60)
---@field max_deliveries? integer deliveries without a response before dead-lettering (5)
---@field batch? integer          entries per read, at least (64)
---@field block? number           seconds a read waits for new entries (1)
---@field timeout? number         seconds per Redis call (10)
---@field on_error? fun(msg: string)  a Redis failure the queue goes on after (default: a throttled line on stderr)

---@class QueueStats
---@field length integer   entries not yet settled (not delivered yet, or pending)
---@field pending integer  delivered and not yet acknowledged, all consumers
---@field dead integer     records in <stream>:dead
---@field results integer  records in <stream>:results

---@class QueueCounters
---@field read integer
---@field reclaimed integer   entries taken over from stopped workers
---@field results integer     results written by this process
---@field dead integer        entries this process dead-lettered
---@field parked integer      failures left for another delivery
---@field extended integer    lease extensions
---@field lost_leases integer entries another worker took while this one held them
---@field repeats integer     results not written: the entry was settled already
---@field flushes integer
---@field held integer        entries read and not yet settled
---@field round_trips integer Redis round trips of both connections
---@field commands integer
---@field connects integer

---@class Queue
---@field stream string
---@field group string
---@field consumer string
---@field nheld integer
local Queue = {}

---A queue on Redis; nothing is sent yet. nil, msg, "invalid" for bad options.
---@param opts QueueOptions
---@return Queue|nil
---@return string|nil err
---@return string|nil kind
function queue.redis(opts) end

---Adds an entry: its id; with dedupe, false, "duplicate" for a URL (method, body) already pushed
---with dedupe. nil, msg, kind ("redis" or "invalid") on failure.
---@param entry string|{ url: string, method?: string, headers?: table<string,string>, body?: string, json?: table, timeout?: number, max_redirects?: integer, verify?: boolean, decompress?: boolean }
---@param opts? { dedupe: boolean }
---@return string|false|nil id
---@return string|nil err
---@return string|nil kind
function Queue:push(entry, opts) end

---Pushes many entries, per_call (500) per round trip: added, duplicates; or nil, msg, kind.
---@param entries (string|table)[]
---@param opts? { dedupe: boolean }
---@param per_call? integer
---@return integer|nil added
---@return integer|string|nil duplicates_or_err
---@return string|nil kind
function Queue:push_many(entries, opts, per_call) end

---The source for f:each: own pending entries first, then entries of stopped workers, then new ones.
---@param opts? { drain: boolean, prefetch: integer }  drain: end once nothing is new or pending; prefetch: entries read ahead (give the fetcher's concurrency)
---@return fun(): string|table|nil
function Queue:source(opts) end

---on_result for f:each: a response (any status) is acknowledged and written to <stream>:results
---in one step; a failure without one waits for another delivery, or goes to <stream>:dead.
---@param opts? { keep_body: boolean }
---@return fun(key: string, result: FetchResult, index: integer, item: any)
function Queue:sink(opts) end

---Stop reading (SIGTERM): what was read is still handed out, then the source ends.
function Queue:stop() end

---A fetcher plugin: per-host requests in flight (limit) and per second (rate) across every worker.
---@param opts { limit?: integer, rate?: number, ttl?: number }
---@return table plugin
function Queue:politeness(opts) end

---Checks the connection and that the keys are streams: true, or nil, msg, "redis".
---@return true|nil
---@return string|nil err
---@return string|nil kind
function Queue:check() end

---@return QueueStats|nil
---@return string|nil err
---@return string|nil kind
function Queue:stats() end

---@return QueueCounters
function Queue:counters() end

---Closes both connections and stops the lease keeper; also the `<close>` of a queue.
function Queue:close() end

return queue
