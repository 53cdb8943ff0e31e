-- session_spec.lua: auth (Basic, Bearer, user:pass@ URLs), form and multipart bodies, the helpers
-- (urlencode, base64, json) and sessions (base_url, merged headers, a cookie jar across redirects)
-- against real servers: Debian's python3-httpbin under gunicorn (started here, stopped by pid) and
-- the fixture server's /echo, with what curl sends for the same flags as the reference.

local http = require "http"
local json = require "json"
local cookies = require "cookies"
local task = require "task"
local httpbin = require "tests.fixtures.httpbin"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local PORT = assert(BASE:match(":(%d+)$"))
local OTHER = "http://localhost:" .. PORT -- the same server, another origin

local hb -- httpbin: { url, pid, stop }
local tmp

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- curl's output for args (no ~/.curlrc, no proxy from the environment).
local function curl(args)
  local p = assert(io.popen("curl -q -sS --noproxy '*' " .. args .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function ok(res, err, kind)
  assert(res, ("request failed: %s (%s)"):format(tostring(err), tostring(kind)))
  return res
end

-- The fixture's /echo of a response: method, headers (lower-case), body ...
local function echo(res)
  assert.are.equal(200, res.status)
  return assert(json.decode(res.body))
end

local function decode(text)
  return assert(json.decode(text), "not JSON: " .. text)
end

setup(function()
  hb = httpbin.start()
  tmp = os.tmpname()
  os.remove(tmp)
  assert(os.execute("mkdir -p " .. q(tmp)))
end)

teardown(function()
  if hb then hb:stop() end
  if tmp then os.execute("rm -rf " .. q(tmp)) end
end)

describe("auth", function()
  it("auth = { user, pass } is Basic, accepted by httpbin and refused when wrong", function()
    local res = ok(http.get(hb.url .. "/basic-auth/alice/s3cret", { auth = { "alice", "s3cret" } }))
    assert.are.equal(200, res.status)
    assert.are.same({ authenticated = true, user = "alice" }, decode(res.body))
    res = ok(http.get(hb.url .. "/basic-auth/alice/s3cret", { auth = { "alice", "wrong" } }))
    assert.are.equal(401, res.status)
    assert.are.equal(401, ok(http.get(hb.url .. "/basic-auth/alice/s3cret")).status)
  end)

  it("sends the Authorization curl -u sends", function()
    local e = echo(ok(http.get(BASE .. "/echo", { auth = { "us@er", "p:ss é" } })))
    local c = decode(curl("-u " .. q("us@er:p:ss é") .. " " .. q(BASE .. "/echo")))
    assert.are.equal(c.headers.authorization, e.headers.authorization)
    assert.are.equal("Basic " .. http.base64("us@er:p:ss é"), e.headers.authorization)
  end)

  it("user:pass@ in a URL is Basic, percent-decoded, as curl reads it, and never in res.url", function()
    for _, userinfo in ipairs{ "us%40er:p%3Ass", "user", ":pw", "a%20b:c%2Fd", "", ":", "u:" } do
      local url = "http://" .. userinfo .. "@127.0.0.1:" .. PORT .. "/echo"
      local res = ok(http.get(url))
      local c = decode(curl(q(url)))
      assert.is_string(c.headers.authorization)
      assert.are.equal(c.headers.authorization, echo(res).headers.authorization, userinfo)
      assert.are.equal(BASE .. "/echo", res.url)
    end
    local res = ok(http.get("http://alice:s3cret@" .. hb.url:match("//(.*)") .. "/basic-auth/alice/s3cret"))
    assert.are.equal(200, res.status)
  end)

  it("works with every method and with options, and auth = false sends none", function()
    local url = "http://u:p@127.0.0.1:" .. PORT .. "/echo"
    local basic = "Basic " .. http.base64("u:p")
    assert.are.equal(basic, echo(ok(http.post(url, "x"))).headers.authorization)
    assert.are.equal(basic, echo(ok(http.request{ url = url, method = "PUT", body = "x" })).headers.authorization)
    assert.is_nil(echo(ok(http.get(url, { auth = false }))).headers.authorization)
    -- the option wins over the URL's, as curl's -u does
    local e = echo(ok(http.get(url, { auth = { "x", "y" } })))
    assert.are.equal("Basic " .. http.base64("x:y"), e.headers.authorization)
  end)

  it("auth = { bearer = token } is Bearer, as curl --oauth2-bearer sends it", function()
    local res = ok(http.get(hb.url .. "/bearer", { auth = { bearer = "tok.en-1" } }))
    assert.are.equal(200, res.status)
    assert.are.equal("tok.en-1", decode(res.body).token)
    assert.are.equal(401, ok(http.get(hb.url .. "/bearer")).status)
    local c = decode(curl("--oauth2-bearer tok.en-1 " .. q(BASE .. "/echo")))
    local e = echo(ok(http.get(BASE .. "/echo", { auth = { bearer = "tok.en-1" } })))
    assert.are.equal(c.headers.authorization, e.headers.authorization)
  end)

  it("an Authorization header of the script's own wins", function()
    local e = echo(ok(http.get(BASE .. "/echo", { auth = { "u", "p" }, headers = { authorization = "Custom x" } })))
    assert.are.equal("Custom x", e.headers.authorization)
  end)

  it("refuses a bad auth option with kind invalid", function()
    for _, bad in ipairs{ "user:pass", { 1, 2 }, { bearer = 5 }, { bearer = "" }, {} } do
      local res, err, kind = http.get(BASE .. "/echo", { auth = bad })
      assert.is_nil(res)
      assert.are.equal("invalid", kind)
      assert.matches("auth", err)
    end
  end)

  it("credentials go on within an origin and are dropped when a redirect leaves it", function()
    local function via(target, opts)
      return echo(ok(http.get(BASE .. "/redirect-to?url=" .. http.urlencode(target), opts))).headers.authorization
    end
    assert.are.equal("Bearer t", via(BASE .. "/echo", { auth = { bearer = "t" } }))
    assert.is_nil(via(OTHER .. "/echo", { auth = { bearer = "t" } }))
    local basic = "Basic " .. http.base64("u:p")
    local url = "http://u:p@127.0.0.1:" .. PORT .. "/redirect-to?url="
    assert.are.equal(basic, echo(ok(http.get(url .. http.urlencode(BASE .. "/echo")))).headers.authorization)
    assert.is_nil(echo(ok(http.get(url .. http.urlencode(OTHER .. "/echo")))).headers.authorization)
    -- httpbin agrees: its /redirect-to on to another origin's /basic-auth is refused there
    local res = ok(http.get(hb.url .. "/redirect-to?url=" .. http.urlencode(OTHER .. "/echo"),
      { auth = { "alice", "s3cret" } }))
    assert.is_nil(echo(res).headers.authorization)
  end)

  it("credentials in a Location are Basic for the new URL", function()
    local target = "http://v:w@localhost:" .. PORT .. "/echo"
    local res = ok(http.get(BASE .. "/redirect-to?url=" .. http.urlencode(target)))
    assert.are.equal("Basic " .. http.base64("v:w"), echo(res).headers.authorization)
    assert.are.equal(OTHER .. "/echo", res.url)
  end)
end)

describe("form bodies", function()
  it("form = table is urlencoded, byte for byte as curl --data-urlencode sends it", function()
    local pairs_ = { { "a", "b c" }, { "d", "&/=é+~*" }, { "e", "" }, { "a", "2" } }
    local e = echo(ok(http.post(BASE .. "/echo", nil, { form = pairs_ })))
    local args = {}
    for _, p in ipairs(pairs_) do
      args[#args + 1] = "--data-urlencode " .. q(p[1] .. "=" .. p[2])
    end
    local c = decode(curl(table.concat(args, " ") .. " " .. q(BASE .. "/echo")))
    assert.are.equal(c.body, e.body)
    assert.are.equal("application/x-www-form-urlencoded", e.headers["content-type"])
    assert.are.equal(c.headers["content-type"], e.headers["content-type"])
    assert.are.equal("POST", e.method)
  end)

  it("httpbin reads the form back", function()
    local res = ok(http.request{ url = hb.url .. "/post", method = "POST",
                                 form = { name = "Ada Lovelace", lang = { "lua", "c" }, sym = "a&b=c" } })
    local got = decode(res.body)
    assert.are.same({ name = "Ada Lovelace", lang = { "lua", "c" }, sym = "a&b=c" }, got.form)
    assert.are.equal("application/x-www-form-urlencoded", got.headers["Content-Type"])
  end)

  it("keeps a Content-Type the script set, and refuses two bodies", function()
    local e = echo(ok(http.post(BASE .. "/echo", nil, { form = { a = 1 }, headers = { ["content-type"] = "text/x" } })))
    assert.are.equal("text/x", e.headers["content-type"])
    assert.are.equal("a=1", e.body)
    for _, opts in ipairs{ { form = { a = 1 }, body = "x" }, { form = { a = 1 }, json = { 1 } },
                           { form = { a = 1 }, multipart = {} }, { form = "a=1" },
                           { form = { a = {} , [true] = 1 } } } do
      opts.url, opts.method = BASE .. "/echo", "POST"
      local res, err, kind = http.request(opts)
      assert.is_nil(res)
      assert.are.equal("invalid", kind, err)
    end
  end)

  it("a 303 turns a form POST into a GET without body", function()
    local res = ok(http.post(BASE .. "/redirect-to?status=303&url=%2Fecho", nil, { form = { a = "1" } }))
    local e = echo(res)
    assert.are.equal("GET", e.method)
    assert.are.equal(0, e.body_length)
    assert.is_nil(e.headers["content-type"])
  end)
end)

describe("multipart bodies", function()
  local function files()
    write(tmp .. "/notes.txt", "plain text\n")
    write(tmp .. "/page.HTML", "<p>hi</p>")
    write(tmp .. "/blob", "no extension")
    write(tmp .. "/data.json", '{"a":1}')
    write(tmp .. "/pic.png", "PNG-ish")
  end

  -- The body with its boundary replaced, so two senders' bodies compare.
  local function normalised(e)
    local b = e.headers["content-type"]:match("boundary=(.+)$")
    assert.is_string(b)
    return (e.body:gsub(b:gsub("%p", "%%%0"), "BOUNDARY"))
  end

  it("sends the parts, file names and content types curl -F sends", function()
    files()
    local parts = {
      { name = "field", value = "value one" },
      { name = 'quo"te', value = "x" },
      { name = "notes", file = tmp .. "/notes.txt" },
      { name = "page", file = tmp .. "/page.HTML" },
      { name = "blob", file = tmp .. "/blob" },
      { name = "data", file = tmp .. "/data.json" },
      { name = "renamed", file = tmp .. "/pic.png", filename = "other.bin" },
      { name = "typed", file = tmp .. "/notes.txt", content_type = "text/csv" },
      { name = "inline", value = "made up", filename = "made.txt" },
      { name = "inline2", value = "made up", filename = "made" },
      { name = "tv", value = "abc", content_type = "text/x-thing" },
      { name = "esc", value = "e", filename = 'a"b\nc.xml' },
    }
    local e = echo(ok(http.post(BASE .. "/echo", nil, { multipart = parts })))
    local c = decode(curl(table.concat({
      "-F " .. q("field=value one"),
      "-F " .. q('quo"te=x'),
      "-F " .. q("notes=@" .. tmp .. "/notes.txt"),
      "-F " .. q("page=@" .. tmp .. "/page.HTML"),
      "-F " .. q("blob=@" .. tmp .. "/blob"),
      "-F " .. q("data=@" .. tmp .. "/data.json"),
      "-F " .. q("renamed=@" .. tmp .. "/pic.png;filename=other.bin"),
      "-F " .. q("typed=@" .. tmp .. "/notes.txt;type=text/csv"),
      "-F " .. q("inline=made up;filename=made.txt"),
      "-F " .. q("inline2=made up;filename=made"),
      "-F " .. q("tv=abc;type=text/x-thing"),
      "-F " .. q('esc=e;filename="a\\"b\nc.xml"'),
      q(BASE .. "/echo"),
    }, " ")))
    assert.are.equal(normalised(c), normalised(e))
    assert.are.equal(c.body_length, e.body_length)
    assert.matches("^multipart/form%-data; boundary=%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%x+$",
      e.headers["content-type"])
  end)

  it("streams files from disk with Content-Length, as curl -F sends them, and again on a 307", function()
    local big = tmp .. "/big.bin"
    local piece = {}
    for i = 0, 255 do piece[#piece + 1] = string.char(i) end
    write(big, table.concat(piece):rep(12289)) -- 3,145,984 bytes: 48 reads and a bit
    write(tmp .. "/notes.txt", "plain text\n")
    local parts = { { name = "note", value = "hello" }, { name = "big", file = big },
                    { name = "notes", file = tmp .. "/notes.txt" } }
    local e = echo(ok(http.post(BASE .. "/echo", nil, { multipart = parts })))
    assert.is_false(e.chunked)
    assert.are.equal(("%d"):format(e.body_length), e.headers["content-length"])
    local c = decode(curl(table.concat({ "-F " .. q("note=hello"), "-F " .. q("big=@" .. big),
      "-F " .. q("notes=@" .. tmp .. "/notes.txt"), q(BASE .. "/echo") }, " ")))
    assert.are.equal(c.body_length, e.body_length)
    assert.are.equal(normalised(c), normalised(e))
    -- a 307 reads the files again from the start
    local r = echo(ok(http.post(BASE .. "/redirect-to?url=/echo&status=307", nil, { multipart = parts })))
    assert.are.equal(e.body_length, r.body_length)
    assert.are.equal(normalised(e), normalised(r))
    -- a 303 (and a 302 after a POST) drops the body for the GET that follows
    for _, status in ipairs({ 303, 302 }) do
      local res = ok(http.post(BASE .. "/redirect-to?url=/echo&status=" .. status, nil, { multipart = parts }))
      local g = echo(res)
      assert.are.equal("GET", g.method)
      assert.are.equal(0, g.body_length)
    end
    -- a file whose size says nothing is read whole: a /proc file (size 0, with data) and a pipe
    local proc = echo(ok(http.post(BASE .. "/echo", nil, { multipart = { { name = "v", file = "/proc/version" } } })))
    assert.matches("Linux version", proc.body, 1, true)
    local fifo = tmp .. "/fifo"
    assert(os.execute("mkfifo " .. fifo .. " && (printf 'from a pipe' > " .. fifo .. " &)"))
    local piped = echo(ok(http.post(BASE .. "/echo", nil, { multipart = { { name = "p", file = fifo } } })))
    assert.matches('filename="fifo"\r\nContent%-Type: application/octet%-stream\r\n\r\nfrom a pipe\r\n', piped.body)
    os.remove(fifo)
    -- a directory is no file to send
    local res, err, kind = http.post(BASE .. "/echo", nil, { multipart = { { name = "d", file = tmp } } })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("cannot read", err, 1, true)
    os.remove(big)
  end)

  it("httpbin reads the fields and files back", function()
    files()
    local res = ok(http.request{ url = hb.url .. "/post", method = "POST", multipart = {
      { name = "who", value = "me" },
      { name = "upload", file = tmp .. "/notes.txt" },
    } })
    local got = decode(res.body)
    assert.are.same({ who = "me" }, got.form)
    assert.are.same({ upload = "plain text\n" }, got.files)
  end)

  it("a file that cannot be read, or a malformed part, is an invalid request", function()
    for _, parts in ipairs{ { { name = "f", file = tmp .. "/missing" } }, { { value = "x" } },
                            { { name = "a", value = "x", file = tmp .. "/notes.txt" } }, { "x" },
                            { { name = "a", value = {} } }, { a = 1 } } do
      local res, err, kind = http.post(BASE .. "/echo", nil, { multipart = parts })
      assert.is_nil(res)
      assert.are.equal("invalid", kind, err)
    end
    local _, err = http.post(BASE .. "/echo", nil, { multipart = { { name = "f", file = tmp .. "/missing" } } })
    assert.matches("missing", err)
  end)
end)

describe("helpers", function()
  it("urlencode: a string is a component, a table a form", function()
    assert.are.equal("a%20b%2Fc%3F%26%3D~-._%C3%A9", http.urlencode("a b/c?&=~-._é"))
    assert.are.equal("a=1&a=2&b=x+y", http.urlencode{ b = "x y", a = { 1, 2 } })
    assert.are.equal("z=%26&y=true", http.urlencode{ { "z", "&" }, { "y", true } })
    assert.are.equal("", http.urlencode{})
    assert.has_error(function() http.urlencode(nil) end)
    assert.has_error(function() http.urlencode{ a = {} , [1] = 5 } end)
  end)

  it("urldecode undoes urlencode and reads + as a space", function()
    for _, s in ipairs{ "", "plain", "a b/c?&=é\0\255%", ("x"):rep(1000) } do
      assert.are.equal(s, http.urldecode(http.urlencode(s)))
    end
    assert.are.equal("a b+c", http.urldecode("a+b%2Bc"))
    assert.are.equal("%zz%", http.urldecode("%zz%"))
  end)

  it("base64 and unbase64 follow RFC 4648's test vectors and agree with coreutils", function()
    local vectors = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                      fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" }
    for plain, encoded in pairs(vectors) do
      assert.are.equal(encoded, http.base64(plain))
      assert.are.equal(plain, http.unbase64(encoded))
    end
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local all = table.concat(bytes)
    write(tmp .. "/bytes", all)
    local p = assert(io.popen("base64 -w0 " .. q(tmp .. "/bytes")))
    local coreutils = p:read("a")
    p:close()
    assert.are.equal(coreutils, http.base64(all))
    assert.are.equal(all, http.unbase64(coreutils))
    assert.are.equal("\251\255", http.unbase64("-_8")) -- URL-safe alphabet, no padding
    assert.are.equal("foo", http.unbase64(" Zm9v\n"))
    local v, err = http.unbase64("Zm9v!")
    assert.is_nil(v)
    assert.matches("invalid base64", err)
    assert.is_nil((http.unbase64("Z")))
  end)

  it("json encodes (with / as is), decodes, has null, and returns errors", function()
    assert.are.equal('{"url":"http://x/y"}', json.encode{ url = "http://x/y" })
    assert.are.equal("[1,2,null]", json.encode{ 1, 2, json.null })
    local v = json.decode('{"a":[1,null,"x\\/y"],"b":{}}')
    assert.are.equal(json.null, v.a[2])
    assert.are.equal("x/y", v.a[3])
    assert.are.same({}, v.b)
    local bad, err = json.decode("{nope")
    assert.is_nil(bad)
    assert.matches("invalid JSON", err)
    bad, err = json.decode(nil)
    assert.is_nil(bad)
    assert.is_string(err)
    bad, err = json.encode{ f = print }
    assert.is_nil(bad)
    assert.matches("cannot encode", err)
    bad, err = json.encode(0 / 0)
    assert.is_nil(bad)
    assert.is_string(err)
    -- the body httpbin echoes is the body sent
    local res = ok(http.post(hb.url .. "/post", { k = "a/b", n = 1.5 }))
    assert.are.same({ k = "a/b", n = 1.5 }, decode(res.body).json)
  end)
end)

describe("sessions", function()
  it("resolves URLs against base_url and leaves absolute ones alone", function()
    local s = http.session{ base_url = BASE .. "/api/" }
    local res = ok(s:get("../echo?x=1"))
    assert.are.equal("/echo", echo(res).path)
    assert.are.equal("1", echo(res).query.x)
    assert.are.equal("/echo", echo(ok(s:get("/echo"))).path)
    assert.are.equal("/echo", echo(ok(s:get(OTHER .. "/echo"))).path)
    local s2 = http.session{ base_url = hb.url .. "/anything/v1/" }
    assert.are.equal(hb.url .. "/anything/v1/items/1", decode(ok(s2:get("items/1")).body).url)
    local nobase = http.session()
    local r, err, kind = nobase:get("echo")
    assert.is_nil(r)
    assert.are.equal("invalid", kind)
    assert.matches("base_url", err)
  end)

  it("merges session and request headers, the request's winning on a name in any case", function()
    local s = http.session{ base_url = BASE, headers = { ["X-One"] = "s1", ["X-Two"] = "s2", ["X-Three"] = "s3" } }
    local e = echo(ok(s:get("/echo", { headers = { ["x-two"] = "r2", ["X-Three"] = false, ["X-Four"] = "r4" } })))
    assert.are.equal("s1", e.headers["x-one"])
    assert.are.equal("r2", e.headers["x-two"])
    assert.is_nil(e.headers["x-three"])
    assert.are.equal("r4", e.headers["x-four"])
    local count = 0
    for _, h in ipairs(e.raw_headers) do
      if h[1]:lower() == "x-two" then count = count + 1 end
    end
    assert.are.equal(1, count)
    -- the session's own headers are unchanged for the next request
    e = echo(ok(s:get("/echo")))
    assert.are.equal("s2", e.headers["x-two"])
    assert.are.equal("s3", e.headers["x-three"])
  end)

  it("has every method, with bodies as http.post takes them", function()
    local s = http.session{ base_url = BASE }
    for _, m in ipairs{ "get", "delete", "options" } do
      assert.are.equal(m:upper(), echo(ok(s[m](s, "/echo"))).method)
    end
    assert.are.equal(200, ok(s:head("/echo")).status)
    for _, m in ipairs{ "post", "put", "patch" } do
      local e = echo(ok(s[m](s, "/echo", "raw")))
      assert.are.equal(m:upper(), e.method)
      assert.are.equal("raw", e.body)
      e = echo(ok(s[m](s, "/echo", { k = 1 })))
      assert.are.equal('{"k":1}', e.body)
      e = echo(ok(s[m](s, "/echo", nil, { form = { a = "b" } })))
      assert.are.equal("a=b", e.body)
      assert.are.equal(0, echo(ok(s[m](s, "/echo"))).body_length)
    end
    local e = echo(ok(s:request{ url = "/echo", method = "PUT", multipart = { { name = "a", value = "1" } } }))
    assert.matches("^multipart/form%-data", e.headers["content-type"])
  end)

  it("applies defaults (auth, timeout, max_redirects ...) that a request may override", function()
    local s = http.session{ base_url = hb.url, auth = { "alice", "s3cret" }, timeout = 0.5, max_redirects = 0 }
    assert.are.equal(200, ok(s:get("/basic-auth/alice/s3cret")).status)
    assert.are.equal(401, ok(s:get("/basic-auth/alice/s3cret", { auth = { "alice", "no" } })).status)
    assert.are.equal(401, ok(s:get("/basic-auth/alice/s3cret", { auth = false })).status)
    assert.are.equal(302, ok(s:get("/redirect/1")).status)
    assert.are.equal(200, ok(s:get("/redirect/1", { max_redirects = 2 })).status)
    local res, _, kind = s:get("/delay/2")
    assert.is_nil(res)
    assert.are.equal("timeout", kind)
    -- session auth stays in the session's origin too
    local s2 = http.session{ auth = { bearer = "t" } }
    assert.is_nil(echo(ok(s2:get(BASE .. "/redirect-to?url=" .. http.urlencode(OTHER .. "/echo")))).headers.authorization)
  end)

  it("refuses unknown or per-request options when made", function()
    assert.has_error(function() http.session{ bogus = 1 } end)
    assert.has_error(function() http.session{ url = BASE } end)
    assert.has_error(function() http.session{ body = "x" } end)
    assert.has_error(function() http.session{ base_url = "ftp://x/" } end)
    assert.has_error(function() http.session{ cookies = "yes" } end)
    assert.has_error(function() http.session{ headers = "x" } end)
    local s = http.session{ base_url = BASE }
    local res, _, kind = s:get("/echo", { bogus = 1 })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
  end)

  it("keeps cookies across requests and redirects, as curl -b/-c -L does (httpbin /cookies/set)", function()
    local s = http.session{ base_url = hb.url }
    -- Set-Cookie comes with the 302; the hop it leads to already sends them
    local res = ok(s:get("/cookies/set?a=1&b=two"))
    assert.are.equal(1, res.redirects)
    assert.are.same({ a = "1", b = "two" }, decode(res.body).cookies)
    assert.are.same({ a = "1", b = "two" }, decode(ok(s:get("/cookies")).body).cookies)
    local jar = tmp .. "/curl-jar.txt"
    local c = decode(curl("-L -c " .. q(jar) .. " -b " .. q(jar) .. " " .. q(hb.url .. "/cookies/set?a=1&b=two")))
    assert.are.same(c.cookies, decode(res.body).cookies)
    -- deletion (Max-Age=0 and an Expires in the past)
    res = ok(s:get("/cookies/delete?a"))
    assert.are.same({ b = "two" }, decode(res.body).cookies)
    c = decode(curl("-L -c " .. q(jar) .. " -b " .. q(jar) .. " " .. q(hb.url .. "/cookies/delete?a")))
    assert.are.same(c.cookies, decode(res.body).cookies)
    local cookie = s.cookies:get(hb.url .. "/")
    assert.are.equal("b=two", cookie)
    -- without a session nothing is kept
    ok(http.get(hb.url .. "/cookies/set?z=1"))
    assert.are.same({}, decode(ok(http.get(hb.url .. "/cookies")).body).cookies)
  end)

  it("sends each origin only its cookies along a redirect chain", function()
    local s = http.session()
    ok(s:get(BASE .. "/echo")) -- nothing set yet
    s.cookies:store(BASE .. "/", "here=1")
    s.cookies:store(OTHER .. "/", "there=2")
    local e = echo(ok(s:get(BASE .. "/redirect-to?url=" .. http.urlencode(OTHER .. "/echo"))))
    assert.are.equal("there=2", e.headers.cookie)
    e = echo(ok(s:get(OTHER .. "/redirect-to?url=" .. http.urlencode(BASE .. "/echo"))))
    assert.are.equal("here=1", e.headers.cookie)
    -- cookies do not care for ports (RFC 6265 §8.5): httpbin on 127.0.0.1 shares them with BASE,
    -- localhost does not
    local res = ok(s:get(hb.url .. "/cookies/set?hb=3"))
    assert.are.same({ hb = "3", here = "1" }, decode(res.body).cookies)
    assert.are.equal("here=1; hb=3", echo(ok(s:get(BASE .. "/echo"))).headers.cookie)
    assert.are.equal("there=2", echo(ok(s:get(OTHER .. "/echo"))).headers.cookie)
  end)

  it("puts a Cookie header of the script's own first, and drops it on a cross-origin hop", function()
    local s = http.session()
    s.cookies:store(BASE .. "/", "jar=1")
    s.cookies:store(OTHER .. "/", "other=2")
    local e = echo(ok(s:get(BASE .. "/echo", { headers = { cookie = "mine=0" } })))
    assert.are.equal("mine=0; jar=1", e.headers.cookie)
    e = echo(ok(s:get(BASE .. "/redirect-to?url=%2Fecho", { headers = { cookie = "mine=0" } })))
    assert.are.equal("mine=0; jar=1", e.headers.cookie)
    e = echo(ok(s:get(BASE .. "/redirect-to?url=" .. http.urlencode(OTHER .. "/echo"), { headers = { cookie = "mine=0" } })))
    assert.are.equal("other=2", e.headers.cookie)
  end)

  it("stores Set-Cookie attributes as received: Path, HttpOnly, SameSite, Max-Age", function()
    local s = http.session{ base_url = hb.url }
    local set = { "p=1; Path=/anything/in", "h=2; HttpOnly; SameSite=Strict", "m=3; Max-Age=3600",
                  "e=4; Expires=Wed, 21 Oct 2099 07:28:00 GMT" }
    local query = {}
    for _, v in ipairs(set) do query[#query + 1] = { "Set-Cookie", v } end
    ok(s:get("/response-headers?" .. http.urlencode(query)))
    local by = {}
    for _, c in ipairs(s.cookies:list()) do by[c.name] = c end
    assert.are.equal("/anything/in", by.p.path)
    assert.is_true(by.h.http_only)
    assert.are.equal("Strict", by.h.same_site)
    assert.is_true(math.abs(by.m.expires - (os.time() + 3600)) <= 5)
    assert.are.equal(4096250880, by.e.expires)
    assert.are.equal("h=2; m=3; e=4", s.cookies:get(hb.url .. "/anything"))
    assert.are.equal("p=1; h=2; m=3; e=4", s.cookies:get(hb.url .. "/anything/in/x"))
    local headers = decode(ok(s:get("/anything/in/x")).body).headers
    assert.are.equal("p=1; h=2; m=3; e=4", headers.Cookie)
  end)

  it("cookies = false has no jar; a jar can be shared by two sessions", function()
    local none = http.session{ base_url = hb.url, cookies = false }
    assert.is_nil(none.cookies)
    assert.are.same({}, decode(ok(none:get("/cookies/set?a=1")).body).cookies)
    local jar = cookies.new()
    local s1 = http.session{ base_url = hb.url, cookies = jar }
    local s2 = http.session{ base_url = hb.url, cookies = jar }
    ok(s1:get("/cookies/set?shared=yes"))
    assert.are.same({ shared = "yes" }, decode(ok(s2:get("/cookies")).body).cookies)
  end)

  it("serves concurrent tasks, each exchange with its own cookies", function()
    local s = http.session{ base_url = hb.url }
    local tasks = {}
    for i = 1, 8 do
      tasks[i] = task.spawn(function()
        return decode(ok(s:get("/cookies/set?t" .. i .. "=" .. i)).body).cookies["t" .. i]
      end)
    end
    for i = 1, 8 do
      local done, v = tasks[i]:join()
      assert.is_true(done)
      assert.are.equal(tostring(i), v)
    end
    local all = decode(ok(s:get("/cookies")).body).cookies
    for i = 1, 8 do
      assert.are.equal(tostring(i), all["t" .. i])
    end
  end)

  it("saves a cookies.txt curl -b sends from, and loads one curl -c wrote", function()
    local s = http.session{ base_url = hb.url }
    ok(s:get("/cookies/set?sa=1&sb=x%20y"))
    local ours = tmp .. "/ours.txt"
    assert.is_true(s.cookies:save(ours))
    local c = decode(curl("-b " .. q(ours) .. " " .. q(hb.url .. "/cookies")))
    assert.are.same({ sa = "1", sb = "x y" }, c.cookies)
    local theirs = tmp .. "/theirs.txt"
    os.remove(theirs)
    curl("-L -c " .. q(theirs) .. " " .. q(hb.url .. "/cookies/set?ca=1&cb=2"))
    local s2 = http.session{ base_url = hb.url }
    assert.are.equal(2, s2.cookies:load(theirs))
    assert.are.same({ ca = "1", cb = "2" }, decode(ok(s2:get("/cookies")).body).cookies)
  end)
end)

describe("Set-Cookie values as received", function()
  it("a value holding ', x=' stays one cookie (the headers are not joined and split again)", function()
    local raw = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1, b=2; Path=/\r\nSet-Cookie: c=3; Path=/\r\n" ..
                "Content-Length: 2\r\nConnection: close\r\n\r\nok"
    local hex = raw:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
    local s = http.session{}
    local res = assert(s:get(BASE .. "/raw?hex=" .. hex))
    assert.are.equal(200, res.status)
    assert.are.equal("a=1, b=2; c=3", s.cookies:get(BASE .. "/"))
  end)
end)

describe("the fetcher with a session", function()
  it("fetcher.new{session=} sends every request through it: its headers and its cookie jar", function()
    local fetcher = require "fetcher"
    local s = http.session{ headers = { ["X-Session"] = "yes" } }
    local raw = "HTTP/1.1 200 OK\r\nSet-Cookie: sid=42; Path=/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    local hex = raw:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
    assert(s:get(BASE .. "/raw?hex=" .. hex)) -- the login step
    local url = BASE .. "/echo"
    local results = fetcher.new{ session = s, max_retries = 0 }:fetch_urls{ url, { url = url .. "?e=1" } }
    for _, key in ipairs{ url, url .. "?e=1" } do
      local r = results[key]
      assert.is_true(r.success, tostring(r.error))
      local echoed = assert(r:json())
      assert.are.equal("yes", echoed.headers["x-session"])
      assert.are.equal("sid=42", echoed.headers["cookie"])
    end
    assert.has_error(function() fetcher.new{ session = 5 } end)
  end)
end)
