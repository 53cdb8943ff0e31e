-- cli_get_spec.lua: `luafetch get` (lua/cli_get.lua), run as a program and compared with curl for
-- the same flags against the fixture server: bodies, -X -H -d --json -F, -i, -o, -w, -f,
-- --max-redirs, -k/--cacert, --proxy; the list mode of several URLs (@FILE, stdin, lines, order,
-- --json-lines, the summary, thresholds, retries); exit statuses; colour only on a terminal.

local cli = require "cli_get"
local cjson = require "cjson"
local task = require "task"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")
local CERTS = os.getenv("FIXTURE_CERTS")
local TLS_GOOD = os.getenv("FIXTURE_TLS_GOOD")
local TLS_SELF = os.getenv("FIXTURE_TLS_SELFSIGNED")

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local temps = {}
local function tmpfile(text)
  local path = os.tmpname()
  if text then write(path, text) end
  temps[#temps + 1] = path
  return path
end

-- Runs `prog args...` (each argument quoted) with optional stdin text and environment prefix;
-- returns stdout, stderr, exit code, seconds taken. Blocks this process's loop, which is fine:
-- the fixture server is another process.
local function exec(prog, args, opts)
  opts = opts or {}
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = q(a) end
  local errfile = tmpfile()
  local input = opts.stdin and tmpfile(opts.stdin) or "/dev/null"
  local started = task.now()
  local p = assert(io.popen(("%s timeout 30 %s %s 2>%s <%s"):format(opts.env or "", prog,
    table.concat(quoted, " "), q(errfile), q(input))))
  local out = p:read("a")
  local _, how, code = p:close()
  assert.are.equal("exit", how)
  local err = read(errfile)
  -- under the ASan build a child's sanitizer report would stay in its stderr: pass it on and fail
  if err:find("Sanitizer", 1, true) or err:find("runtime error:", 1, true) then
    io.stderr:write(err)
    error("sanitizer report from a child process", 2)
  end
  return out, err, code, task.now() - started
end

local function get(args, opts)
  local full = { "get" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return exec(q(BIN), full, opts)
end

local function curl(args, opts)
  return exec("curl", args, opts)
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

local function echo_of(text)
  local ok, doc = pcall(cjson.decode, text)
  assert(ok, "not JSON: " .. text)
  return doc
end

-- The parts of a multipart/form-data body: { headers = {lower name -> value}, content } each.
local function multipart_parts(content_type, body)
  local boundary = assert(content_type:match("boundary=([^;]+)"), content_type)
  local parts = {}
  local delim = "--" .. boundary
  local pos = assert(body:find(delim, 1, true), "no first boundary")
  while true do
    local after = pos + #delim
    if body:sub(after, after + 1) == "--" then break end
    local next_pos = assert(body:find("\r\n" .. delim, after, true), "unterminated part")
    local part = body:sub(after + 2, next_pos - 1)
    local head, content = part:match("^(.-)\r\n\r\n(.*)$")
    local headers = {}
    for name, value in head:gmatch("([^:\r\n]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
    parts[#parts + 1] = { headers = headers, content = content }
    pos = next_pos + 2
  end
  return parts
end

local ESC = string.char(27)

describe("luafetch get: argument parsing", function()
  it("parses curl's options and the list options", function()
    local o = assert(cli.parse_args{ "-X", "put", "-H", "A: 1", "-H", "B: 2", "-d", "x=1", "-k",
      "--cacert", "ca.pem", "-o", "out", "-i", "-s", "-v", "-w", "%{http_code}", "-c8",
      "--timeout", "2.5", "--retries=2", "--max-redirs", "0", "--json-lines", "--threshold",
      "p95<0.5", "--threshold", "success_rate>0.99", "-f", "http://a/", "--", "-weird" })
    assert.are.equal("put", o.request)
    assert.are.same({ "A: 1", "B: 2" }, o.header)
    assert.are.same({ "x=1" }, o.data)
    assert.is_true(o.insecure and o.include and o.silent and o.verbose and o.json_lines and o.fail)
    assert.are.equal("ca.pem", o.cacert)
    assert.are.equal(8, o.concurrency)
    assert.are.equal(2.5, o.timeout)
    assert.are.equal(2, o.retries)
    assert.are.equal(0, o.max_redirs)
    assert.are.equal(2, #o.thresholds)
    assert.are.same({ "http://a/", "-weird" }, o.url)
  end)

  it("rejects bad usage with a message", function()
    local cases = {
      { {}, "no URL given" },
      { { "--bogus", "u" }, "unknown option '%-%-bogus'" },
      { { "-c", "0", "u" }, "^%-c must be a positive integer, got '0'" },
      { { "--timeout", "-1", "u" }, "unknown option '%-1'" },
      { { "--timeout", "soon", "u" }, "^%-%-timeout must be a positive number, got 'soon'" },
      { { "--retries", "1.5", "u" }, "^%-%-retries must be a non%-negative integer" },
      { { "--threshold", "p95<<1", "u" }, "bad threshold 'p95<<1'" },
      { { "--threshold", "latency<1", "u" }, "unknown metric 'latency'" },
      { { "-d", "a", "--json", "{}", "u" }, "not several" },
      { { "-f", "--no-fail", "u" }, "not both" },
    }
    for _, case in ipairs(cases) do
      local opts, err = cli.parse_args(case[1])
      assert.is_nil(opts, table.concat(case[1], " "))
      assert.matches(case[2], err)
    end
  end)

  it("builds request options like curl: methods, headers, bodies", function()
    local base = assert(cli.request_options(assert(cli.parse_args{ "-d", "a=1", "-d", "b=2", "u" })))
    assert.are.equal("POST", base.method)
    assert.are.equal("a=1&b=2", base.body)
    assert.are.equal("application/x-www-form-urlencoded", base.headers["Content-Type"])
    base = assert(cli.request_options(assert(cli.parse_args{ "--json", '{"a":', "--json", "1}",
      "-H", "content-type: application/vnd.x+json", "u" })))
    assert.are.equal('{"a":1}', base.body)
    assert.are.equal("application/vnd.x+json", base.headers["content-type"])
    assert.is_nil(base.headers["Content-Type"])
    assert.are.equal("application/json", base.headers.Accept)
    base = assert(cli.request_options(assert(cli.parse_args{ "-I", "-k", "--max-redirs", "0", "u" })))
    assert.are.equal("HEAD", base.method)
    assert.is_false(base.verify)
    assert.are.equal(0, base.max_redirects)
    local _, err = cli.request_options(assert(cli.parse_args{ "-H", "no colon", "u" }))
    assert.matches("%-H wants 'Name: value'", err)
  end)

  it("expands -w variables as curl names them", function()
    local outcome = { url = "http://a/", success = true, attempts = 1, elapsed = 0.5,
      res = { status = 200, body = "hello", url = "http://a/b", redirects = 2,
              headers = { ["content-type"] = "text/plain", ["x-id"] = "7" },
              timings = { dns = 0.001, connect = 0.002, tls = 0.003, ttfb = 0.01, total = 0.02 } } }
    local text = cli.write_out("%{http_code} %{size_download} %{num_redirects} %{url_effective} "
      .. "%{http_version} %{content_type} %header{X-Id} 100%%\\n", outcome, 0)
    assert.are.equal("200 5 2 http://a/b 1.1 text/plain 7 100%\n", text)
    text = cli.write_out("%{time_namelookup} %{time_connect} %{time_appconnect} "
      .. "%{time_starttransfer} %{time_total}", outcome, 0)
    assert.are.equal("0.001000 0.003000 0.006000 0.010000 0.020000", text)
    local warned
    assert.are.equal("000 ", cli.write_out("%{http_code} %{bogus}", { url = "u", attempts = 1,
      elapsed = 0 }, 1, function(m) warned = m end))
    assert.matches("unknown %-%-write%-out variable: 'bogus'", warned)
  end)
end)

describe("luafetch get: one URL, compared with curl", function()
  teardown(function()
    for _, p in ipairs(temps) do os.remove(p) end
  end)

  it("writes the body to stdout exactly as curl does", function()
    for _, path in ipairs{ "/json", "/bytes/70000", "/chunked/5000", "/status/404" } do
      local out, err, code = get{ BASE .. path }
      local cout, _, ccode = curl{ "-s", BASE .. path }
      assert.are.equal(0, code, err)
      assert.are.equal(0, ccode)
      assert.are.equal(cout, out, path)
    end
  end)

  it("-X, -H, -d, -d @FILE, --data-binary, --json send what curl sends", function()
    local file = tmpfile("line one\r\nline two\n")
    local cases = {
      { "-X", "PUT", "-H", "X-Test: yes", "-H", "Accept: text/plain" },
      { "-d", "a=1", "-d", "b=two words" },
      { "-d", "@" .. file },
      { "--data-binary", "@" .. file },
      { "--json", '{"name":"x","n":1}' },
      { "-X", "PATCH", "--json", "@" .. file },
      { "-H", "Content-Type: text/csv", "-d", "1,2" },
    }
    for _, flags in ipairs(cases) do
      local args = { table.unpack(flags) }
      args[#args + 1] = BASE .. "/echo"
      local out, err, code = get(args)
      assert.are.equal(0, code, err)
      local cargs = { "-s", table.unpack(args) }
      local cout = curl(cargs)
      local mine, theirs = echo_of(out), echo_of(cout)
      local what = table.concat(flags, " ")
      assert.are.equal(theirs.method, mine.method, what)
      assert.are.equal(theirs.body, mine.body, what)
      assert.are.equal(theirs.body_sha256, mine.body_sha256, what)
      for _, h in ipairs{ "content-type", "accept", "x-test" } do
        assert.are.equal(theirs.headers[h], mine.headers[h], what .. ": " .. h)
      end
    end
  end)

  it("-F sends the multipart fields curl sends (values, files, type=, filename=)", function()
    local file = tmpfile("col1,col2\n1,2\n")
    local flags = { "-F", "name=report", "-F", "doc=@" .. file .. ";type=text/csv",
                    "-F", "other=@" .. file .. ";filename=renamed.txt", "-F", "inline=<" .. file }
    local args = { table.unpack(flags) }
    args[#args + 1] = BASE .. "/echo"
    local out, err, code = get(args)
    assert.are.equal(0, code, err)
    local cout = curl({ "-s", table.unpack(args) })
    local mine, theirs = echo_of(out), echo_of(cout)
    assert.are.equal("POST", mine.method)
    local mp = multipart_parts(mine.headers["content-type"], mine.body)
    local cp = multipart_parts(theirs.headers["content-type"], theirs.body)
    assert.are.equal(#cp, #mp)
    for i = 1, #cp do
      assert.are.equal(cp[i].content, mp[i].content, "part " .. i)
      assert.are.equal(cp[i].headers["content-disposition"], mp[i].headers["content-disposition"])
      assert.are.equal(cp[i].headers["content-type"], mp[i].headers["content-type"], "part " .. i)
    end
  end)

  it("-i prints the status line and headers curl prints", function()
    local out, err, code = get{ "-i", BASE .. "/json" }
    assert.are.equal(0, code, err)
    local cout = curl{ "-s", "-i", BASE .. "/json" }
    local head, body = out:match("^(.-)\r\n\r\n(.*)$")
    local chead, cbody = cout:match("^(.-)\r\n\r\n(.*)$")
    assert.are.equal(cbody, body)
    assert.are.equal(chead:match("^[^\r]*"), head:match("^[^\r]*")) -- HTTP/1.1 200 OK
    for _, h in ipairs{ "content-type", "content-length" } do
      assert.are.equal(chead:lower():match("\n" .. h .. ": ([^\r]*)"), head:match("\n" .. h .. ": ([^\r]*)"))
    end
    local hout = get{ "-I", BASE .. "/json" }
    assert.matches("^HTTP/1%.1 200 OK\r\n", hout)
    assert.is_nil(hout:find("\"ok\"", 1, true))
  end)

  it("-o FILE holds what curl -o writes; stdout stays empty", function()
    local mine, theirs = tmpfile(), tmpfile()
    local out, err, code = get{ "-o", mine, BASE .. "/bytes/12345" }
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    curl{ "-s", "-o", theirs, BASE .. "/bytes/12345" }
    assert.are.equal(read(theirs), read(mine))
    assert.are.equal(12345, #read(mine))
    assert.is_nil(read(mine .. ".part"))
  end)

  it("-o and stdout take the body as it arrives: 64 MiB in bounded memory; a cut body leaves no file", function()
    local mine = tmpfile()
    local n = 64 * 1024 * 1024
    local _, err, code = exec("/usr/bin/time", { "-f", "maxrss=%M", BIN, "get", "-o", mine, BASE .. "/bytes/" .. n })
    assert.are.equal(0, code, err)
    local f = assert(io.open(mine, "rb"))
    assert.are.equal(n, f:seek("end"))
    f:seek("set", n - 26)
    local at = (n - 26) % 26 -- the body is abc...xyz over and over from its first byte
    assert.are.equal(("abcdefghijklmnopqrstuvwxyz"):rep(2):sub(at + 1, at + 26), f:read("a"))
    f:close()
    local kb = tonumber(err:match("maxrss=(%d+)"))
    if not BIN:find("/asan/", 1, true) then -- sanitizer shadow memory is no measure of the body
      assert.is_true(kb < 40 * 1024, ("peak RSS %d kB for a 64 MiB body"):format(kb))
    end
    os.remove(mine)
    local out
    out, err, code = get{ "-o", mine, BASE .. "/truncated" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.is_nil(read(mine))
    assert.is_nil(read(mine .. ".part"))
    out, err, code = get{ BASE .. "/truncated" }
    assert.are.equal(1, code)
    assert.are.equal(10, #out) -- what came, as curl writes it
    assert.matches("closed", err)
  end)

  it("-o onto a FIFO or device writes into it in place, never renaming over it", function()
    local dir = tmpfile()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. " && mkfifo " .. dir .. "/fifo"))
    -- a reader drains the FIFO into a file, as `-o /dev/stdout | cmd` would
    local reader = assert(io.popen("timeout 10 cat " .. dir .. "/fifo > " .. dir .. "/got; echo done"))
    local out, err, code = get{ "-o", dir .. "/fifo", BASE .. "/bytes/777" }
    assert.are.equal(0, code, err)
    assert.are.equal("done\n", reader:read("a"))
    reader:close()
    assert.are.equal(777, #read(dir .. "/got"))
    local kind = io.popen("stat -c %F " .. dir .. "/fifo"):read("l")
    assert.are.equal("fifo", kind) -- still the FIFO: not replaced by a renamed regular file
    assert.is_nil(read(dir .. "/fifo.part"))
    os.execute("rm -rf " .. dir)
  end)

  it("-w prints curl's write-out variables with curl's values", function()
    local format = "%{http_code} %{response_code} %{size_download} %{num_redirects} "
      .. "%{url_effective} %{http_version} %{content_type}\\n"
    local out, err, code = get{ "-s", "-o", "/dev/null", "-w", format, BASE .. "/redirect/2" }
    assert.are.equal(0, code, err)
    local cout = curl{ "-s", "-L", "-o", "/dev/null", "-w", format, BASE .. "/redirect/2" }
    assert.are.equal(cout, out)
    out = get{ "-s", "-o", "/dev/null", "-w", format, BASE .. "/json" }
    cout = curl{ "-s", "-o", "/dev/null", "-w", format, BASE .. "/json" }
    assert.are.equal(cout, out)
    -- the timing points are cumulative, as curl's: each at least the one before
    out = get{ "-o", "/dev/null", "-w", "%{time_namelookup} %{time_connect} %{time_starttransfer} %{time_total}",
      BASE .. "/delay/0.05" }
    local t = {}
    for n in out:gmatch("%S+") do t[#t + 1] = tonumber(n) end
    assert.are.equal(4, #t, out)
    assert.is_true(t[1] <= t[2] and t[2] <= t[3] and t[3] <= t[4], out)
    assert.is_true(t[4] >= 0.05, out)
    -- a failure: http_code 000, as curl
    local port_out = get{ "-s", "-w", "%{http_code}", "http://127.0.0.1:1/" }
    local port_curl = curl{ "-s", "-w", "%{http_code}", "http://127.0.0.1:1/" }
    assert.are.equal(port_curl, port_out)
  end)

  it("-f fails a status of 400 or more with no body; without it the body prints and exits 0", function()
    local out, err, code = get{ "-f", BASE .. "/status/404" }
    local cout, _, ccode = curl{ "-s", "-f", BASE .. "/status/404" }
    assert.are.equal(1, code)
    assert.are.equal(22, ccode) -- curl's own code for the same case
    assert.are.equal(cout, out)
    assert.matches("HTTP 404", err)
    out, _, code = get{ BASE .. "/status/500" }
    assert.are.equal(0, code)
    assert.are.equal(curl{ "-s", BASE .. "/status/500" }, out)
    local _, serr, scode = get{ "-s", "-f", BASE .. "/status/404" }
    assert.are.equal(1, scode)
    assert.are.equal("", serr)
  end)

  it("follows redirects; --max-redirs 0 returns the 3xx itself as curl without -L", function()
    local out, _, code = get{ BASE .. "/redirect/3" }
    assert.are.equal(0, code)
    assert.are.equal(curl{ "-s", "-L", BASE .. "/redirect/3" }, out)
    out = get{ "--max-redirs", "0", "-w", "%{http_code}", BASE .. "/redirect/3" }
    assert.are.equal(curl{ "-s", "-w", "%{http_code}", BASE .. "/redirect/3" }, out)
    local _, err, lcode = get{ "--max-redirs", "1", BASE .. "/redirect/3" }
    assert.are.equal(1, lcode)
    assert.matches("redirect", err)
  end)

  it("-k and --cacert decide TLS trust as with curl", function()
    if not (CERTS and TLS_GOOD and TLS_SELF) then
      error("the TLS fixtures are not set (run tests/run_specs.sh)")
    end
    local _, err, code = get{ TLS_SELF .. "/json" }
    local _, _, ccode = curl{ "-s", TLS_SELF .. "/json" }
    assert.are.equal(1, code)
    assert.are.equal(60, ccode)
    assert.matches("^luafetch get: tls: ", err)
    local out, kerr, kcode = get{ "-k", TLS_SELF .. "/json" }
    assert.are.equal(0, kcode, kerr)
    assert.are.equal(curl{ "-s", "-k", TLS_SELF .. "/json" }, out)
    local good = TLS_GOOD:gsub("127%.0%.0%.1", "localhost") .. "/json"
    out, err, code = get{ "--cacert", CERTS .. "/ca.pem", good }
    assert.are.equal(0, code, err)
    assert.are.equal(curl{ "-s", "--cacert", CERTS .. "/ca.pem", good }, out)
  end)

  it("--proxy sends the request through the proxy as curl does", function()
    -- the fixture server answers an absolute-form request line, which is what a proxy gets
    local out, err, code = get{ "--proxy", BASE, "http://example.invalid/echo" }
    if not cli.http_supports("proxy") then
      assert.are.equal(2, code)
      assert.matches("%-%-proxy needs the http module's proxy option", err)
      return
    end
    assert.are.equal(0, code, err)
    local mine = echo_of(out)
    local theirs = echo_of(curl{ "-s", "--proxy", BASE, "http://example.invalid/echo" })
    assert.are.equal(theirs.path, mine.path)
    assert.are.equal(theirs.headers.host, mine.headers.host)
  end)

  it("-v shows the request and the response head on stderr, the body on stdout", function()
    local out, err, code = get{ "-v", "-H", "X-A: b", BASE .. "/json" }
    assert.are.equal(0, code)
    assert.are.equal(curl{ "-s", BASE .. "/json" }, out)
    assert.matches("\n> X%-A: b\n", err)
    assert.matches("\n< HTTP/1%.1 200 OK\n", err)
    assert.matches("\n< content%-type: application/json\n", err)
    assert.matches("total", err)
  end)

  it("reports a refused port at once: no retries by default (was 11 s with three)", function()
    local out, err, code, seconds = get{ "http://127.0.0.1:1/" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^luafetch get: connect: ", err)
    assert.is_true(seconds < 2, "took " .. seconds .. " s")
    assert.is_nil(err:find("retry", 1, true))
  end)

  it("--retries N, else MAX_RETRIES, sets the retries", function()
    local key = ("get-%d-%d"):format(os.time(), math.random(1e9))
    local out, _, code = get({ "--json-lines", ("%s/flaky/%s?fail=2"):format(BASE, key) },
      { env = "MAX_RETRIES=2 BACKOFF_FACTOR=0.01" })
    assert.are.equal(0, code)
    assert.are.equal(3, cjson.decode(out).attempts)
    key = key .. "b"
    out, _, code = get({ "-f", "--retries", "0", "--json-lines", ("%s/flaky/%s?fail=2"):format(BASE, key) },
      { env = "MAX_RETRIES=2" })
    assert.are.equal(1, code)
    assert.are.equal(1, cjson.decode(out).attempts)
    local _, err, bad = get({ BASE .. "/json" }, { env = "MAX_RETRIES=lots" })
    assert.are.equal(2, bad)
    assert.matches("MAX_RETRIES must be a non%-negative integer, got 'lots'", err)
  end)
end)

describe("luafetch get: several URLs", function()
  teardown(function()
    for _, p in ipairs(temps) do os.remove(p) end
  end)

  local function pat(s) return (s:gsub("%p", "%%%0")) end

  it("one line per URL in order, STATUS SIZE SECONDS URL or ERR KIND MESSAGE URL; exit 1 on a failure", function()
    local out, err, code = get{ "-c", "3", BASE .. "/delay/0.2", BASE .. "/bytes/10",
      BASE .. "/status/404", "http://127.0.0.1:1/x" }
    assert.are.equal(1, code)
    local lines = lines_of(out)
    assert.are.equal(4, #lines, out)
    assert.matches("^200 7 %d+%.%d%d%d " .. pat(BASE) .. "/delay/0%.2$", lines[1])
    assert.matches("^200 10 %d+%.%d%d%d " .. pat(BASE) .. "/bytes/10$", lines[2])
    assert.matches("^404 %d+ %d+%.%d%d%d " .. pat(BASE) .. "/status/404$", lines[3])
    assert.matches("^ERR connect .+ http://127%.0%.0%.1:1/x$", lines[4])
    assert.is_nil(out:find(ESC, 1, true)) -- no colour into a pipe
    -- the summary, k6-like, on stderr
    assert.matches("4 URLs: 2 ok, 2 failed %(50%.0%% ok%) in .+; p50 .+ p95 .+ p99 .+ max .+; 0/4 reused", err)
  end)

  it("--no-fail lets a 4xx count as a response; all ok exits 0", function()
    local _, _, code = get{ "--no-fail", BASE .. "/status/404", BASE .. "/json" }
    assert.are.equal(0, code)
    local _, _, okcode = get{ BASE .. "/json", BASE .. "/bytes/1" }
    assert.are.equal(0, okcode)
  end)

  it("reads URLs from @FILE and from - (stdin), skipping blanks and # comments", function()
    local list = tmpfile(("# a comment\n%s/bytes/1\n\n  %s/bytes/2  \n"):format(BASE, BASE))
    local out, _, code = get{ "@" .. list, BASE .. "/bytes/3" }
    assert.are.equal(0, code)
    local lines = lines_of(out)
    assert.are.equal(3, #lines)
    assert.matches("/bytes/1$", lines[1])
    assert.matches("/bytes/2$", lines[2])
    assert.matches("/bytes/3$", lines[3])
    -- a list of one is still a list
    out, _, code = get({ "-" }, { stdin = BASE .. "/bytes/4\n" })
    assert.are.equal(0, code)
    assert.matches("^200 4 %S+ " .. pat(BASE) .. "/bytes/4\n$", out)
    local _, err, bad = get{ "@/nonexistent/list" }
    assert.are.equal(2, bad)
    assert.matches("cannot read URLs from /nonexistent/list", err)
  end)

  it("--json-lines: url, status, size, timings, attempts; error and kind on failure", function()
    local out, _, code = get{ "--json-lines", BASE .. "/json", BASE .. "/status/503", "http://127.0.0.1:1/" }
    assert.are.equal(1, code)
    local lines = lines_of(out)
    assert.are.equal(3, #lines)
    assert.matches('^{"url":"[^"]*","status":200,"size":40,"timings":{"dns":', lines[1]) -- a fixed key order
    local ok, bad, refused = cjson.decode(lines[1]), cjson.decode(lines[2]), cjson.decode(lines[3])
    assert.are.equal(BASE .. "/json", ok.url)
    assert.are.equal(200, ok.status)
    assert.are.equal(40, ok.size)
    for _, k in ipairs{ "dns", "connect", "tls", "ttfb", "total" } do assert.is_number(ok.timings[k]) end
    assert.are.equal(1, ok.attempts)
    assert.is_nil(ok.error)
    assert.are.equal(503, bad.status)
    assert.are.equal("status", bad.kind)
    assert.are.equal("HTTP 503 Service Unavailable", bad.error)
    assert.are.equal("connect", refused.kind)
    assert.is_nil(refused.status)
  end)

  it("-w replaces the line of each URL", function()
    local out, _, code = get{ "-w", "%{http_code} %{url_effective}\\n", BASE .. "/redirect/1", BASE .. "/json" }
    assert.are.equal(0, code)
    assert.are.same({ "200 " .. BASE .. "/redirect/0", "200 " .. BASE .. "/json" }, lines_of(out))
  end)

  it("--threshold: a failed one exits 1 and is named; passing ones exit 0", function()
    local urls = { BASE .. "/json", BASE .. "/delay/0.1" }
    local _, err, code = get{ "--threshold", "p95<5", "--threshold", "success_rate>0.99", urls[1], urls[2] }
    assert.are.equal(0, code, err)
    assert.is_nil(err:find("FAILED", 1, true))
    _, err, code = get{ "--threshold", "p95<50ms", "--threshold", "count==2", urls[1], urls[2] }
    assert.are.equal(1, code)
    assert.matches("threshold p95<50ms: FAILED %(p95 = %d+%.%dms%)", err)
    assert.matches("threshold count==2: ok", err)
    -- -s keeps the failed ones, and only those
    _, err, code = get{ "-s", "--threshold", "p95<50ms", "--threshold", "count==2", urls[1], urls[2] }
    assert.are.equal(1, code)
    assert.matches("^threshold p95<50ms: FAILED", err)
    assert.is_nil(err:find("count==2", 1, true))
    -- one URL: thresholds apply too
    _, err, code = get{ "--threshold", "max<1ms", "-o", "/dev/null", urls[2] }
    assert.are.equal(1, code)
    assert.matches("threshold max<1ms: FAILED", err)
    _, err, code = get{ "--threshold", "p95<", urls[1] }
    assert.are.equal(2, code)
    assert.matches("bad threshold", err)
  end)

  it("refuses -o and -i with several URLs", function()
    local _, err, code = get{ "-o", "/dev/null", BASE .. "/json", BASE .. "/json" }
    assert.are.equal(2, code)
    assert.matches("work with one URL", err)
  end)
end)

describe("luafetch get: terminal manners", function()
  -- `script` gives the program a terminal; its output (stdout and stderr together) is the file
  local function on_tty(cmd, env)
    local log = tmpfile()
    exec("script", { "-qec", (env or "") .. " " .. cmd, log })
    return read(log) or ""
  end

  it("colours the status on a terminal, never with NO_COLOR, never into a pipe", function()
    local cmd = ("%s get %s %s"):format(q(BIN), q(BASE .. "/json"), q(BASE .. "/status/404"))
    local shown = on_tty(cmd)
    assert.truthy(shown:find(ESC .. "[32m200" .. ESC .. "[0m", 1, true), shown)
    assert.truthy(shown:find(ESC .. "[31m404" .. ESC .. "[0m", 1, true), shown)
    local plain = on_tty(cmd, "NO_COLOR=1")
    assert.truthy(plain:find("\n?200 40 "), plain)
    assert.is_nil(plain:find(ESC, 1, true), plain)
  end)

  it("draws the progress bar on a terminal, with the lines and log lines above it", function()
    local urls = {}
    for i = 1, 6 do urls[i] = q(BASE .. "/delay/0.3?i=" .. i) end
    local key = ("bar-%d-%d"):format(os.time(), math.random(1e9))
    urls[#urls + 1] = q(("%s/flaky/%s?fail=1"):format(BASE, key))
    local shown = on_tty(("%s get -c 2 --retries 1 --backoff 0.01 %s"):format(q(BIN), table.concat(urls, " ")),
      "NO_COLOR=1 LUAFETCH_PROGRESS=always")
    assert.truthy(shown:find("[#", 1, true) or shown:find("[.", 1, true), shown)
    assert.truthy(shown:find("7/7 100.0%", 1, true), shown)
    -- every result line and the retry's log line start at the beginning of a line: the bar is
    -- cleared before them, not run into
    for line in shown:gmatch("[^\n]+") do
      -- what stays on the screen after the last \r (the terminal ends lines with \r\n)
      local visible = line:gsub("\r$", ""):gsub("^.*\r", "")
      if visible:find("^Script ") then -- script's own header and footer in the log
      elseif visible:find("INFO", 1, true) then
        assert.matches("^%d%d%d%d%-%d%d%-%d%d .* INFO .*retry 1/1", visible)
      elseif visible:find("/delay/", 1, true) then
        assert.matches("^200 7 ", visible)
      end
    end
    assert.truthy(shown:find("INFO", 1, true), shown)
  end)
end)
