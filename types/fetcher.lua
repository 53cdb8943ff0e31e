---@meta fetcher
-- LuaLS stubs for `require "fetcher"` (lua/fetcher.lua): the seed's AsyncHTTPFetcher.
-- DESIGN.md "fetcher"; docs/fetcher.md.

---@class fetcher
---@field DEFAULTS { max_concurrent: integer, timeout: number, max_retries: integer, backoff_factor: number, max_backoff: number, jitter: number }
local fetcher = {}

---@class FetcherOptions
---@field max_concurrent? integer   requests in flight at most (MAX_CONCURRENT, 100)
---@field max_per_host? integer     requests in flight per host:port at most
---@field timeout? number|HttpTimeouts  seconds per attempt (HTTP_TIMEOUT, 30)
---@field timeouts? table           per-URL timeouts: {[pattern]=s} or {{pattern, s}, ...}
---@field deadline? number          seconds one URL may take, retries and pauses included
---@field max_retries? integer      (MAX_RETRIES, 3): up to max_retries + 1 attempts
---@field backoff_factor? number    (BACKOFF_FACTOR, 1.5): pauses of f * 2^(n-1) s
---@field max_backoff? number       cap on a pause, Retry-After included (60)
---@field jitter? number            fraction added at random to backoff pauses (0.1)
---@field retry? RetryPolicy        a ready policy (replaces the four above)
---@field breaker? Breaker|BreakerOptions|boolean
---@field chunk_size? integer       fetch_urls works through the list in chunks this big
---@field keep_body? boolean        keep bodies in results (default true)
---@field headers? table<string,string>  sent with every request
---@field max_redirects? integer
---@field max_body? integer
---@field verify? boolean
---@field ca_file? string
---@field session? table  an http.session every request goes through
---@field http2? boolean|string
---@field auth? table
---@field decompress? boolean
---@field thresholds? string|string[]|table<string, string>  pass/fail criteria as lua/thresholds.lua parses them: stats.thresholds_ok, failed_thresholds
---@field summary? boolean  log a k6-like summary line at INFO when fetch_urls/each ends (default true)
---@field plugins? (table|string)[] hook tables, modules or plugin names
---@field logger? Logger            default: the shared logger

---@alias FetchEntry string|{ url: string, method?: string, headers?: table<string,string>, body?: string, json?: any, key?: string, timeout?: number|HttpTimeouts, deadline?: number }

---@class FetchResult
---@field url string
---@field method string
---@field success boolean          a 2xx/3xx response after retries
---@field status_code integer|nil
---@field error string|nil         transport error, or "HTTP 404 Not Found"
---@field kind string|nil          an http kind, "circuit_open", or "status"
---@field elapsed number           seconds, retries and pauses included
---@field attempts integer
---@field body string|nil          nil when keep_body is false
---@field headers table|nil        built from the response when first read
---@field bytes integer            body size
---@field reused boolean|nil       the last response came over a pooled connection
---@field final_url string|nil     URL after redirects
local FetchResult = {}

---The body decoded as JSON; nil and a message when it is not JSON (or was not kept).
---@return any|nil value
---@return string|nil err
function FetchResult:json() end

---@class FetchStats
---@field count integer          URLs finished
---@field succeeded integer
---@field failed integer
---@field attempts integer       requests sent
---@field retries integer
---@field rejected integer       attempts refused by the breaker
---@field bytes integer
---@field elapsed number
---@field requests_per_sec number
---@field http table             http.stats() counters during the run
---@field breaker table|nil      breaker:states() at the end
---@field hook_errors integer
---@field latency { p50: number, p90: number, p95: number, p99: number, max: number }|nil  seconds per URL (nil with summary = false)
---@field reused integer|nil   URLs whose last response came over a pooled connection
---@field summary string|nil   the summary line ("3 URLs: 2 ok, 1 failed (66.7% ok) in 0.52s, ...")
---@field thresholds ThresholdCheck[]|nil  with the thresholds option: every check
---@field thresholds_ok boolean|nil        every threshold passed
---@field failed_thresholds string[]|nil   the failed ones as written ("p95<0.5")

---A fetcher plugin: any of these hooks (a failing hook is reported, never fatal).
---@class FetcherPlugin
---@field name? string
---@field on_start? fun(info: { total: integer|nil })
---@field on_request? fun(req: table)
---@field on_response? fun(req: table, res: Response)
---@field on_error? fun(req: table, err: string, kind: string)
---@field on_result? fun(key: string, result: FetchResult)
---@field on_finish? fun(results: table<string, FetchResult>|nil, stats: FetchStats)

---@class Fetcher
---@field last_stats FetchStats|nil
local Fetcher = {}

---Fetches every entry; results by key (the URL or the entry's key), the stats, and the results
---as a list in input order.
---@param urls FetchEntry[]
---@return table<string, FetchResult> results
---@return FetchStats stats
---@return FetchResult[] list
function Fetcher:fetch_urls(urls) end

---Streams: entries from `source` (an iterator, an object with :next(), or an array; once it has
---returned nil it is never called again), on_result(key, result, index, item) as each finishes,
---item being what the source gave (the same string or table); nothing is kept.
---@param source (fun(): FetchEntry|nil)|FetchEntry[]|{ next: fun(self): FetchEntry|nil }
---@param on_result? fun(key: string, result: FetchResult, index: integer, item: any)
---@return FetchStats
function Fetcher:each(source, on_result) end

---One URL or request through the policy, breaker and hooks (on_finish is not called).
---@param entry FetchEntry
---@return FetchResult
function Fetcher:fetch(entry) end

---Adds a plugin after creation.
---@param plugin FetcherPlugin|string
---@return Fetcher self
function Fetcher:use(plugin) end

---@param url string
---@return number|HttpTimeouts
function Fetcher:timeout_for(url) end

---A new fetcher; options left out come from the environment, then the defaults.
---@param opts? FetcherOptions
---@return Fetcher
function fetcher.new(opts) end

---Defaults from MAX_CONCURRENT, HTTP_TIMEOUT, MAX_RETRIES, BACKOFF_FACTOR (and LOG_LEVEL is
---checked); a bad value raises { exit_code = 2, message = ... }.
---@param getenv? fun(name: string): string|nil
---@return table<string, number>
function fetcher.env_defaults(getenv) end

return fetcher
