-- cookies_spec.lua: the cookie jar's rules (RFC 6265) on a clock the spec sets: parsing and
-- cookie dates, host-only and domain cookies, public suffixes from Debian's list (with its
-- Unicode names in Punycode), paths, Secure, HttpOnly, SameSite, Expires/Max-Age and deletion,
-- bounds; and cookies.txt both ways with curl (-b reads ours and sends what the jar would, -c
-- writes back what it read) against the fixture server's /echo.

local cookies = require "cookies"
local json = require "json"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local PORT = assert(BASE:match(":(%d+)$"))
local T0 = 1700000000

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- A jar on a clock the test moves: jar, set(t).
local function clocked()
  local now = T0
  local jar = cookies.new{ now = function() return now end }
  return jar, function(t) now = t end
end

describe("Set-Cookie parsing", function()
  it("reads the name, value and attributes, case-insensitively, the last of each winning", function()
    local c = cookies.parse(" sid = a b ; path=/x; DOMAIN=.Example.TEST; Secure; httponly; SameSite=lax;" ..
                            " Max-Age=60; Path=/y; unknown=1")
    assert.are.equal("sid", c.name)
    assert.are.equal("a b", c.value)
    assert.are.equal("/y", c.path)
    assert.are.equal("example.test", c.domain)
    assert.is_true(c.secure)
    assert.is_true(c.http_only)
    assert.are.equal("Lax", c.same_site)
    assert.are.equal(60, c.max_age)
  end)

  it("keeps SameSite as Strict, Lax or None, and nothing for other values", function()
    assert.are.equal("Strict", cookies.parse("a=1; SameSite=STRICT").same_site)
    assert.are.equal("None", cookies.parse("a=1; samesite=none").same_site)
    assert.is_nil(cookies.parse("a=1; SameSite=bogus").same_site)
    assert.is_nil(cookies.parse("a=1").same_site)
  end)

  it("ignores cookies without '=', with an empty name, control characters or over 4096 bytes", function()
    assert.is_nil(cookies.parse("novalue"))
    assert.is_nil(cookies.parse("=v"))
    assert.is_nil(cookies.parse("a=b\1c"))
    assert.is_nil(cookies.parse("a=b\127"))
    assert.is_nil(cookies.parse("a=" .. ("x"):rep(4096)))
    assert.is_table(cookies.parse("a=" .. ("x"):rep(4095)))
    assert.are.equal("", cookies.parse("a=").value)
    assert.are.equal("x=y", cookies.parse("a=x=y").value)
  end)

  it("ignores a bad Max-Age or Expires, and a Path not starting with /", function()
    local c = cookies.parse("a=1; Max-Age=1e3; Expires=never; Path=rel")
    assert.is_nil(c.max_age)
    assert.is_nil(c.expires)
    assert.is_false(c.path)
    assert.are.equal(-1, cookies.parse("a=1; Max-Age=-99999999999999999999999").max_age)
    assert.is_true(cookies.parse("a=1; Max-Age=99999999999999999999999").max_age > 1e12)
  end)

  it("splits Set-Cookie headers joined with ', ' without cutting dates", function()
    assert.are.same({ "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/", "b=2", "c=3; HttpOnly" },
      cookies.split_set_cookie("a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Path=/, b=2, c=3; HttpOnly"))
    assert.are.same({ "a=x, y" }, cookies.split_set_cookie("a=x, y"))
    assert.are.same({ "a=1" }, cookies.split_set_cookie("a=1"))
  end)
end)

describe("cookie dates", function()
  local T = 1445412480 -- 2015-10-21 07:28:00 UTC
  it("reads the forms servers send", function()
    for _, s in ipairs{ "Wed, 21 Oct 2015 07:28:00 GMT", "Wednesday, 21-Oct-15 07:28:00 GMT",
                        "Wed Oct 21 07:28:00 2015", "21 Oct 2015 07:28:00", "Wed, 21-Oct-2015 07:28:00 GMT",
                        "2015 oct 21 7:28:0", "Wed, 21 October 2015 07:28:00 UTC" } do
      assert.are.equal(T, cookies.parse_date(s), s)
    end
    assert.are.equal(0, cookies.parse_date("Thu, 01-Jan-1970 00:00:00 GMT"))
    assert.are.equal(1456704000, cookies.parse_date("Mon, 29 Feb 2016 00:00:00 GMT"))
    assert.are.equal(3029529600, cookies.parse_date("Sat, 01 Jan 2066 00:00:00 GMT")) -- "66" would be 2066
    assert.are.equal(cookies.parse_date("01 Jan 2066 00:00:00"), cookies.parse_date("01 Jan 66 00:00:00"))
    assert.are.equal(cookies.parse_date("01 Jan 1999 00:00:00"), cookies.parse_date("01 Jan 99 00:00:00"))
  end)

  it("refuses impossible dates and missing parts", function()
    for _, s in ipairs{ "Wed, 32 Oct 2015 07:28:00 GMT", "Sun, 29 Feb 2015 00:00:00 GMT",
                        "Wed, 21 Oct 2015 24:00:00 GMT", "Wed, 21 Oct 2015 07:60:00 GMT",
                        "Wed, 21 Oct 1600 07:28:00 GMT", "Wed, 21 Oct 2015", "21 2015 07:28:00",
                        "Wed, 31 Apr 2015 07:28:00 GMT", "", "nonsense" } do
      assert.is_nil(cookies.parse_date(s), s)
    end
  end)
end)

describe("public suffixes (Debian's publicsuffix list)", function()
  it("knows ICANN and private suffixes, wildcards and exceptions", function()
    for _, d in ipairs{ "com", "co.uk", "github.io", "blogspot.com", "x.ck", "foo.kawasaki.jp",
                        "xn--55qx5d.cn", "test", "localhost" } do
      assert.is_true(cookies.is_public_suffix(d), d)
    end
    for _, d in ipairs{ "example.com", "example.co.uk", "user.github.io", "www.ck", "city.kawasaki.jp",
                        "kawasaki.jp", "example.test" } do
      assert.is_false(cookies.is_public_suffix(d), d)
    end
  end)

  it("writes the list's Unicode names in Punycode as its comments give them", function()
    local f = assert(io.open(cookies.PUBLIC_SUFFIX_FILE))
    local expect, checked = nil, 0
    for line in f:lines() do
      local ace = line:match("^// (xn%-%-[%w%-]+) %(")
      if ace then
        expect = ace
      elseif expect and not line:match("^//") and line:match("%S") then
        if line:find("[\128-\255]") and not line:find(".", 1, true) then
          assert.are.equal(expect, cookies.to_ascii(line), line)
          checked = checked + 1
        end
        expect = nil
      end
    end
    f:close()
    assert.is_true(checked > 50, "only " .. checked .. " names checked")
    assert.are.equal("xn--55qx5d.cn", cookies.to_ascii("公司.cn"))
    assert.are.equal("xn--mnchen-3ya.de", cookies.to_ascii("münchen.de"))
  end)

  it("no cookie is set for a public suffix; on the suffix itself it is host-only", function()
    local jar = clocked()
    assert.are.equal(0, jar:store("http://www.example.co.uk/", "a=1; Domain=co.uk"))
    assert.are.equal(0, jar:store("http://user.github.io/", "a=1; Domain=github.io"))
    assert.are.equal(0, jar:store("http://www.example.com/", "a=1; Domain=com"))
    assert.are.equal(0, jar:store("http://x.xn--55qx5d.cn/", "a=1; Domain=公司.cn"))
    assert.is_nil(jar:get("http://other.co.uk/"))
    assert.are.equal(1, jar:store("http://www.example.co.uk/", "b=2; Domain=example.co.uk"))
    assert.are.equal("b=2", jar:get("http://shop.example.co.uk/"))
    assert.are.equal(1, jar:store("http://co.uk/", "c=3; Domain=co.uk"))
    assert.are.equal("c=3", jar:get("http://co.uk/"))
    assert.is_nil(jar:get("http://example2.co.uk/"))
    assert.is_true(jar:list()[1].host_only or jar:list()[2].host_only)
  end)
end)

describe("host-only and domain cookies", function()
  it("a cookie without Domain goes back to its host only", function()
    local jar = clocked()
    assert.are.equal(1, jar:store("http://www.example.test/", "a=1"))
    assert.are.equal("a=1", jar:get("http://www.example.test/"))
    assert.are.equal("a=1", jar:get("http://WWW.Example.test:8080/other"))
    assert.is_nil(jar:get("http://sub.www.example.test/"))
    assert.is_nil(jar:get("http://example.test/"))
    assert.is_true(jar:list()[1].host_only)
  end)

  it("a Domain cookie goes to the domain and every name under it", function()
    local jar = clocked()
    assert.are.equal(1, jar:store("http://www.example.test/", "b=2; Domain=.Example.TEST"))
    assert.are.equal("b=2", jar:get("http://example.test/"))
    assert.are.equal("b=2", jar:get("http://a.b.example.test/"))
    assert.is_nil(jar:get("http://badexample.test/"))
    assert.is_nil(jar:get("http://example.test.evil/"))
    local c = jar:list()[1]
    assert.are.equal("example.test", c.domain)
    assert.is_false(c.host_only)
  end)

  it("refuses a Domain the host is not in", function()
    local jar = clocked()
    assert.are.equal(0, jar:store("http://www.example.test/", "a=1; Domain=other.test"))
    assert.are.equal(0, jar:store("http://www.example.test/", "a=1; Domain=sub.www.example.test"))
    assert.are.equal(0, jar:store("http://example.test/", "a=1; Domain=ample.test"))
    assert.are.same({}, jar:list())
  end)

  it("an address matches only itself", function()
    local jar = clocked()
    assert.are.equal(1, jar:store("http://127.0.0.1/", "a=1; Domain=127.0.0.1"))
    assert.are.equal(0, jar:store("http://127.0.0.1/", "b=1; Domain=0.0.1"))
    assert.are.equal(1, jar:store("http://[::1]:8080/", "v6=1"))
    assert.are.equal("a=1", jar:get("http://127.0.0.1:9/"))
    assert.are.equal("v6=1", jar:get("http://[::1]/"))
    assert.is_nil(jar:get("http://0.0.1/"))
  end)

  it("same name, domain and path replaces (keeping its place); another path is another cookie", function()
    local jar = clocked()
    jar:store("http://h.test/", "a=1")
    jar:store("http://h.test/", "b=2")
    jar:store("http://h.test/", "a=3")
    assert.are.equal("a=3; b=2", jar:get("http://h.test/"))
    jar:store("http://h.test/", "a=4; Path=/p")
    assert.are.equal("a=4; a=3; b=2", jar:get("http://h.test/p"))
    assert.are.equal(3, #jar:list())
  end)
end)

describe("paths", function()
  it("defaults to the request path up to its last /", function()
    local jar = clocked()
    jar:store("http://h.test/a/b/c?x=/y", "d=1")
    jar:store("http://h.test/top", "t=1")
    jar:store("http://h.test/a/b/c", "r=1; Path=relative")
    local by = {}
    for _, c in ipairs(jar:list()) do by[c.name] = c.path end
    assert.are.same({ d = "/a/b", t = "/", r = "/a/b" }, by)
  end)

  it("matches the path, its sub-paths and nothing that merely starts the same", function()
    local jar = clocked()
    jar:store("http://h.test/", "p=1; Path=/docs")
    jar:store("http://h.test/", "s=1; Path=/docs/")
    assert.are.equal("p=1", jar:get("http://h.test/docs"))
    assert.are.equal("s=1; p=1", jar:get("http://h.test/docs/"))
    assert.are.equal("s=1; p=1", jar:get("http://h.test/docs/x?q"))
    assert.is_nil(jar:get("http://h.test/docsx"))
    assert.is_nil(jar:get("http://h.test/"))
  end)

  it("orders longer paths first, then older cookies first", function()
    local jar = clocked()
    jar:store("http://h.test/", "z=1; Path=/")
    jar:store("http://h.test/", "y=1; Path=/a/b")
    jar:store("http://h.test/", "x=1; Path=/a")
    jar:store("http://h.test/", "w=1; Path=/")
    assert.are.equal("y=1; x=1; z=1; w=1", jar:get("http://h.test/a/b/c"))
  end)
end)

describe("Secure, HttpOnly, SameSite", function()
  it("Secure cookies go over https only and only https may set them", function()
    local jar = clocked()
    assert.are.equal(1, jar:store("https://h.test/", "s=1; Secure"))
    assert.are.equal(1, jar:store("https://h.test/", "p=1"))
    assert.are.equal("s=1; p=1", jar:get("https://h.test/"))
    assert.are.equal("p=1", jar:get("http://h.test/"))
    assert.are.equal(0, jar:store("http://h.test/", "t=1; Secure"))
    -- nor may http shadow or delete a Secure cookie of the same name
    assert.are.equal(0, jar:store("http://h.test/", "s=2"))
    assert.are.equal(0, jar:store("http://h.test/", "s=; Max-Age=0"))
    assert.are.equal("s=1; p=1", jar:get("https://h.test/"))
  end)

  it("__Secure- and __Host- names need what their prefix says", function()
    local jar = clocked()
    assert.are.equal(0, jar:store("https://h.test/", "__Secure-a=1"))
    assert.are.equal(1, jar:store("https://h.test/", "__Secure-a=1; Secure"))
    assert.are.equal(0, jar:store("https://h.test/", "__Host-b=1; Secure; Path=/; Domain=h.test"))
    assert.are.equal(0, jar:store("https://h.test/x/", "__Host-b=1; Secure"))
    assert.are.equal(1, jar:store("https://h.test/x/", "__Host-b=1; Secure; Path=/"))
  end)

  it("keeps HttpOnly and SameSite on the cookie and still sends it", function()
    local jar = clocked()
    jar:store("http://h.test/", "h=1; HttpOnly; SameSite=Strict")
    local c = jar:list()[1]
    assert.is_true(c.http_only)
    assert.are.equal("Strict", c.same_site)
    assert.are.equal("h=1", jar:get("http://h.test/"))
  end)
end)

describe("expiry", function()
  it("Max-Age counts from the time it was received", function()
    local jar, set = clocked()
    jar:store("http://h.test/", "m=1; Max-Age=10")
    assert.are.equal(T0 + 10, jar:list()[1].expires)
    set(T0 + 9)
    assert.are.equal("m=1", jar:get("http://h.test/"))
    set(T0 + 10)
    assert.is_nil(jar:get("http://h.test/"))
    assert.are.same({}, jar:list())
  end)

  it("Expires is an absolute time; Max-Age wins over it in either order", function()
    local jar, set = clocked()
    jar:store("http://h.test/", "e=1; Expires=Wed, 15 Nov 2023 00:00:00 GMT") -- T0 + 236800
    jar:store("http://h.test/", "b=1; Max-Age=5; Expires=Wed, 15 Nov 2023 00:00:00 GMT")
    jar:store("http://h.test/", "c=1; Expires=Wed, 15 Nov 2023 00:00:00 GMT; Max-Age=5")
    set(T0 + 6)
    assert.are.equal("e=1", jar:get("http://h.test/"))
    set(1700006400)
    assert.is_nil(jar:get("http://h.test/"))
  end)

  it("a cookie without either lasts the session", function()
    local jar, set = clocked()
    jar:store("http://h.test/", "s=1; Max-Age=soon")
    set(T0 + 1e9)
    assert.are.equal("s=1", jar:get("http://h.test/"))
    assert.is_nil(jar:list()[1].expires)
  end)

  it("Max-Age=0, a negative Max-Age or a past Expires deletes the cookie", function()
    local jar = clocked()
    for _, deletion in ipairs{ "a=; Max-Age=0", "a=x; Max-Age=-1", "a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT" } do
      jar:clear()
      jar:store("http://h.test/", "a=1")
      jar:store("http://h.test/", "keep=1")
      assert.are.equal("a=1; keep=1", jar:get("http://h.test/"))
      assert.are.equal(1, jar:store("http://h.test/", deletion))
      assert.are.equal("keep=1", jar:get("http://h.test/"), deletion)
    end
    -- deleting with another path deletes nothing
    jar:store("http://h.test/", "a=1")
    jar:store("http://h.test/", "a=; Max-Age=0; Path=/x")
    assert.are.equal("keep=1; a=1", jar:get("http://h.test/"))
  end)
end)

describe("bounds", function()
  it("keeps at most 180 cookies a domain, dropping the least recently used", function()
    local jar, set = clocked()
    for i = 1, 200 do
      set(T0 + i)
      jar:store("http://h.test/", "c" .. i .. "=1")
    end
    local list = jar:list()
    assert.are.equal(180, #list)
    local have = {}
    for _, c in ipairs(list) do have[c.name] = true end
    assert.is_nil(have.c1)
    assert.is_true(have.c200)
  end)

  it("a URL that is not http(s) gets and stores nothing", function()
    local jar = clocked()
    assert.are.equal(0, jar:store("ftp://h.test/", "a=1"))
    assert.is_nil(jar:get("ftp://h.test/"))
  end)
end)

describe("cookies.txt", function()
  local dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
  end)
  teardown(function()
    os.execute("rm -rf " .. q(dir))
  end)

  -- A jar with one of each kind, on the real clock (curl reads it with its own).
  local function sample()
    local jar = cookies.new()
    local later = os.time() + 86400
    jar:store("http://www.example.test/", "host=1")
    jar:store("http://www.example.test/", "dom=2; Domain=example.test; Path=/echo")
    jar:store("https://www.example.test/", "sec=3; Secure; HttpOnly")
    jar:store("http://www.example.test/", "per=4; Max-Age=86400")
    jar:store("http://127.0.0.1/", "ip=5; Expires=" .. os.date("!%a, %d %b %Y %H:%M:%S GMT", later))
    jar:store("http://www.example.test/", "far=6; Path=/other")
    assert(#jar:list() == 6)
    return jar
  end

  local function comparable(list)
    for _, c in ipairs(list) do
      c.creation, c.same_site = nil, nil
    end
    return list
  end

  it("writes curl's format and reads it back", function()
    local jar = sample()
    local path = dir .. "/jar.txt"
    assert.is_true(jar:save(path))
    local text = assert(io.open(path)):read("a")
    assert.matches("^# Netscape HTTP Cookie File\n", text)
    assert.matches("\nwww%.example%.test\tFALSE\t/\tFALSE\t0\thost\t1\n", text)
    assert.matches("\n%.example%.test\tTRUE\t/echo\tFALSE\t0\tdom\t2\n", text)
    assert.matches("\n#HttpOnly_www%.example%.test\tFALSE\t/\tTRUE\t0\tsec\t3\n", text)
    local back = cookies.new()
    assert.are.equal(6, back:load(path))
    -- an expired cookie is not written
    local old, set = clocked()
    old:store("http://h.test/", "brief=1; Max-Age=10")
    old:store("http://h.test/", "long=1; Max-Age=100")
    set(T0 + 20)
    assert.is_true(old:save(path))
    text = assert(io.open(path)):read("a")
    assert.is_nil(text:find("brief", 1, true))
    assert.matches("\nh%.test\tFALSE\t/\tFALSE\t" .. (T0 + 100) .. "\tlong\t1\n", text)
    assert.are.same(comparable(jar:list()), comparable(back:list()))
  end)

  it("curl -b sends from our file what the jar would send", function()
    local jar = sample()
    local path = dir .. "/ours.txt"
    assert.is_true(jar:save(path))
    for _, host in ipairs{ "www.example.test", "a.example.test", "127.0.0.1" } do
      local url = "http://" .. host .. ":" .. PORT .. "/echo"
      local cmd = ("curl -q -sS --noproxy '*' --resolve %s:%s:127.0.0.1 -b %s %s"):format(host, PORT, q(path), q(url))
      local h = assert(io.popen(cmd))
      local e = assert(json.decode(h:read("a")))
      h:close()
      -- curl orders equal paths by name; the jar by age: compare the sets
      local function set(v)
        local s = {}
        for part in (v or ""):gmatch("[^; ]+") do s[part] = true end
        return s
      end
      assert.are.same(set(jar:get(url)), set(e.headers.cookie), host)
      assert.is_string(e.headers.cookie)
    end
  end)

  it("curl -c writes back what curl -b read from ours, and we read curl's file the same", function()
    local jar = sample()
    local ours, theirs = dir .. "/a.txt", dir .. "/b.txt"
    assert.is_true(jar:save(ours))
    os.remove(theirs)
    local h = assert(io.popen(("curl -q -sS --noproxy '*' -o /dev/null -b %s -c %s %s"):format(q(ours), q(theirs),
      q(BASE .. "/status/204"))))
    h:read("a")
    h:close()
    local back = cookies.new()
    assert.are.equal(6, back:load(theirs))
    assert.are.same(comparable(jar:list()), comparable(back:list()))
  end)

  it("load reports a missing file and skips expired and malformed lines", function()
    local jar = cookies.new()
    local n, err = jar:load(dir .. "/missing.txt")
    assert.is_nil(n)
    assert.matches("missing", err)
    local path = dir .. "/odd.txt"
    local f = assert(io.open(path, "w"))
    f:write("# comment\n\nh.test\tFALSE\t/\tFALSE\t1\told\t1\n", "garbage line\n",
            "h.test\tFALSE\t/\tFALSE\t0\tnew\t\r\n", "h.test\tFALSE\t/\tFALSE\tx\tbad\t1\n")
    f:close()
    assert.are.equal(1, jar:load(path))
    assert.are.equal("new=", jar:get("http://h.test/"))
  end)
end)
