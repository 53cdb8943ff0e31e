-- redirect_spec.lua: redirects against the fixture (/redirect/<n>, /redirect-to?url=&status=, /loop):
-- 301/302/303 turn a POST into a GET without body, 307/308 keep method and body, relative Locations
-- resolve against the current URL, max_redirects, loops and non-http(s) targets fail with kind
-- "redirect", credentials never cross origins (127.0.0.1 and localhost are two origins), res.url.

local http = require "http"
local cjson = require "cjson.safe"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local PORT = assert(BASE:match(":(%d+)$"))
local OTHER = "http://localhost:" .. PORT -- same server, another origin

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

-- A URL on `base` that redirects to target with status.
local function redirect_to(target, status, base)
  return (base or BASE) .. "/redirect-to?url=" .. urlencode(target) .. (status and "&status=" .. status or "")
end

local function ok(res, err, kind)
  assert(res, ("request failed: %s (%s)"):format(tostring(err), tostring(kind)))
  return res
end

local function echo(res)
  assert.are.equal(200, res.status)
  return assert(cjson.decode(res.body))
end

local function assert_redirect_failure(res, err, kind)
  assert.is_nil(res, "expected a redirect failure, got a response")
  assert.are.equal("redirect", kind, tostring(err))
  assert.is_string(err)
end

describe("redirects", function()
  it("follows a chain and reports the final URL and the hop count", function()
    local res = ok(http.get(BASE .. "/redirect/3"))
    assert.are.equal(200, res.status)
    assert.are.equal("done", res.body)
    assert.are.equal(BASE .. "/redirect/0", res.url)
    assert.are.equal(3, res.redirects)
  end)

  it("each hop is a request", function()
    local before = http.stats().requests
    ok(http.get(BASE .. "/redirect/4"))
    assert.are.equal(before + 5, http.stats().requests)
  end)

  it("a response without redirects has redirects = 0", function()
    assert.are.equal(0, ok(http.get(BASE .. "/status/200")).redirects)
  end)

  for _, status in ipairs{ 301, 302, 303 } do
    it(status .. " turns a POST into a GET without body", function()
      local res = ok(http.post(redirect_to("/echo", status), "payload",
        { headers = { ["Content-Type"] = "text/plain", ["X-Keep"] = "yes" } }))
      local e = echo(res)
      assert.are.equal("GET", e.method)
      assert.are.equal(0, e.body_length)
      assert.is_nil(e.headers["content-length"])
      assert.is_nil(e.headers["content-type"])
      assert.are.equal("yes", e.headers["x-keep"])
      assert.are.equal(BASE .. "/echo", res.url)
      assert.are.equal(1, res.redirects)
    end)

    it(status .. " follows a GET with a GET", function()
      local e = echo(ok(http.get(redirect_to("/echo?from=" .. status, status))))
      assert.are.equal("GET", e.method)
      assert.are.equal(tostring(status), e.query.from)
    end)
  end

  it("303 turns any method but HEAD into a GET", function()
    for _, m in ipairs{ "PUT", "DELETE", "PATCH" } do
      local e = echo(ok(http.request{ url = redirect_to("/echo", 303), method = m, body = "x" }))
      assert.are.equal("GET", e.method, m)
      assert.are.equal(0, e.body_length)
    end
  end)

  for _, status in ipairs{ 307, 308 } do
    it(status .. " keeps the method and the body", function()
      local res = ok(http.post(redirect_to("/echo", status), "payload",
        { headers = { ["Content-Type"] = "text/plain" } }))
      local e = echo(res)
      assert.are.equal("POST", e.method)
      assert.are.equal("payload", e.body)
      assert.are.equal("7", e.headers["content-length"])
      assert.are.equal("text/plain", e.headers["content-type"])
      assert.are.equal(BASE .. "/echo", res.url)
    end)

    it(status .. " keeps a PUT with a JSON body", function()
      local e = echo(ok(http.put(redirect_to("/echo", status), { n = 1 })))
      assert.are.equal("PUT", e.method)
      assert.are.same({ n = 1 }, cjson.decode(e.body))
      assert.are.equal("application/json", e.headers["content-type"])
    end)
  end

  it("HEAD stays HEAD across a redirect", function()
    local res = ok(http.head(redirect_to("/bytes/100", 302)))
    assert.are.equal(200, res.status)
    assert.are.equal("", res.body)
    assert.are.equal("100", res.headers["content-length"])
    assert.are.equal(BASE .. "/bytes/100", res.url)
  end)
end)

describe("redirect targets", function()
  local relative = {
    { "echo", "/echo" },                      -- relative to /redirect-to
    { "./echo?x=1", "/echo?x=1" },
    { "../echo", "/echo" },
    { "/echo?y=2", "/echo?y=2" },
    { "//127.0.0.1:" .. PORT .. "/echo", "/echo" }, -- scheme-relative
    { "/a/b/../../echo", "/echo" },
    { "/echo#fragment", "/echo" },
  }
  for _, case in ipairs(relative) do
    it("resolves the Location " .. case[1], function()
      local res = ok(http.get(redirect_to(case[1])))
      local e = echo(res)
      assert.are.equal("/echo", e.path)
      local want = case[2]
      assert.are.equal(want:match("%?(.*)$") or "", e.raw_query)
      assert.are.equal(BASE .. want, res.url)
    end)
  end

  it("resolves relative Locations against the current URL, hop after hop", function()
    -- /redirect-to → /sub/redirect-to?...: not served; use a chain of absolute-path Locations
    local inner = redirect_to("echo?hop=2")                 -- on BASE, relative
    local res = ok(http.get(redirect_to(inner:sub(#BASE + 1))))
    assert.are.equal(2, res.redirects)
    assert.are.equal("2", echo(res).query.hop)
  end)

  it("max_redirects = 0 returns the 3xx itself", function()
    local res = ok(http.get(redirect_to("/echo", 302), { max_redirects = 0 }))
    assert.are.equal(302, res.status)
    assert.are.equal("/echo", res.headers.location)
    assert.are.equal("redirect", res.body)
    assert.are.equal(0, res.redirects)
    assert.are.equal(redirect_to("/echo", 302), res.url)
  end)

  it("max_redirects = N follows N hops and fails on N + 1", function()
    assert.are.equal("done", ok(http.get(BASE .. "/redirect/2", { max_redirects = 2 })).body)
    assert_redirect_failure(http.get(BASE .. "/redirect/3", { max_redirects = 2 }))
    assert.are.equal("done", ok(http.get(BASE .. "/redirect/1", { max_redirects = 1 })).body)
  end)

  it("follows 5 hops by default, not 6", function()
    assert.are.equal("done", ok(http.get(BASE .. "/redirect/5")).body)
    assert_redirect_failure(http.get(BASE .. "/redirect/6"))
  end)

  it("a loop fails with kind redirect", function()
    local before = http.stats().requests
    assert_redirect_failure(http.get(BASE .. "/loop"))
    assert.is_true(http.stats().requests - before <= 11)
  end)

  for _, target in ipairs{ "ftp://127.0.0.1/file", "file:///etc/passwd", "mailto:someone@example.com",
                            "javascript:alert(1)", "gopher://127.0.0.1:" .. PORT .. "/" } do
    it("refuses a redirect to " .. target:match("^%a+"), function()
      local res, err, kind = http.get(redirect_to(target))
      assert_redirect_failure(res, err, kind)
    end)
  end

  it("refuses a redirect to a malformed URL", function()
    assert_redirect_failure(http.get(redirect_to("http://bad host/")))
  end)

  it("a 3xx without Location is a response", function()
    local res = ok(http.get(BASE .. "/status/302"))
    assert.are.equal(302, res.status)
    assert.are.equal("status 302", res.body)
    assert.are.equal(BASE .. "/status/302", res.url)
  end)

  it("300 and 304 are not followed", function()
    for _, s in ipairs{ 300, 304 } do
      local res = ok(http.get(redirect_to("/echo", s)))
      assert.are.equal(s, res.status)
    end
  end)
end)

describe("credentials across origins", function()
  local creds = { Authorization = "Bearer secret", Cookie = "session=1",
                  ["Proxy-Authorization"] = "Basic eDp5", ["X-Custom"] = "kept" }

  it("drops Authorization, Cookie and Proxy-Authorization on another origin", function()
    local res = ok(http.get(redirect_to(OTHER .. "/echo"), { headers = creds }))
    local e = echo(res)
    assert.is_nil(e.headers.authorization)
    assert.is_nil(e.headers.cookie)
    assert.is_nil(e.headers["proxy-authorization"])
    assert.are.equal("kept", e.headers["x-custom"])
    assert.are.equal("localhost:" .. PORT, e.headers.host)
    assert.are.equal(OTHER .. "/echo", res.url)
  end)

  it("drops them whatever the case of the header name", function()
    local e = echo(ok(http.get(redirect_to(OTHER .. "/echo"), { headers = { authorization = "Bearer x" } })))
    assert.is_nil(e.headers.authorization)
    e = echo(ok(http.get(redirect_to(OTHER .. "/echo"), { headers = { AUTHORIZATION = "Bearer x" } })))
    assert.is_nil(e.headers.authorization)
  end)

  it("keeps them on the same origin (relative and absolute Locations)", function()
    local e = echo(ok(http.get(redirect_to("/echo"), { headers = creds })))
    assert.are.equal("Bearer secret", e.headers.authorization)
    assert.are.equal("session=1", e.headers.cookie)
    e = echo(ok(http.get(redirect_to(BASE .. "/echo", 307), { headers = creds })))
    assert.are.equal("Bearer secret", e.headers.authorization)
  end)

  it("does not restore them when a later hop comes back to the first origin", function()
    local back = redirect_to(BASE .. "/echo", 302, OTHER)
    local res = ok(http.get(redirect_to(back), { headers = creds }))
    assert.are.equal(2, res.redirects)
    local e = echo(res)
    assert.is_nil(e.headers.authorization)
    assert.is_nil(e.headers.cookie)
    assert.are.equal(BASE .. "/echo", res.url)
  end)

  it("307 to another origin keeps the body but not the credentials", function()
    local e = echo(ok(http.post(redirect_to(OTHER .. "/echo", 307), "data", { headers = creds })))
    assert.are.equal("POST", e.method)
    assert.are.equal("data", e.body)
    assert.is_nil(e.headers.authorization)
  end)

  it("leaves the caller's headers table untouched", function()
    local headers = { Authorization = "Bearer secret", ["Content-Type"] = "text/plain", Host = "127.0.0.1:" .. PORT }
    ok(http.post(redirect_to(OTHER .. "/echo", 303), "b", { headers = headers }))
    assert.are.same({ Authorization = "Bearer secret", ["Content-Type"] = "text/plain", Host = "127.0.0.1:" .. PORT },
      headers)
    local opts = { headers = headers, max_redirects = 3 }
    ok(http.get(redirect_to(OTHER .. "/echo"), opts))
    assert.are.equal(headers, opts.headers)
    assert.are.equal(3, opts.max_redirects)
  end)

  it("a script Host header does not follow the request to another origin", function()
    local e = echo(ok(http.get(redirect_to(OTHER .. "/echo"), { headers = { Host = "127.0.0.1:" .. PORT } })))
    assert.are.equal("localhost:" .. PORT, e.headers.host)
  end)
end)
