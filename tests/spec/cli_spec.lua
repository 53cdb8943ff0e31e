-- cli_spec.lua: the command line of DESIGN.md, run as child processes of LUAFETCH_BIN: --version,
-- --help, usage errors (exit 2), `run SCRIPT [ARG...]` with `arg` and `...`, a returned integer
-- as the exit status, syntax and runtime errors (exit 1), `-e`, error{exit_code=N}, and an orderly
-- shutdown (no libuv handle left open) after pooled connections and cancelled requests.

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs BIN with the given (unquoted) arguments under `timeout 20` (a hang shows as status 124);
-- returns stdout, stderr, exit code.
local function run(args, env)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
  local errfile = os.tmpname()
  local cmd = (env or "") .. " timeout 20 " .. shell_quote(BIN) .. " " .. table.concat(quoted, " ") .. " 2>" .. shell_quote(errfile) .. " </dev/null"
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  local _, how, code = f:close()
  local ef = assert(io.open(errfile))
  local err = ef:read("a")
  ef:close()
  os.remove(errfile)
  assert.are.equal("exit", how, "killed by signal " .. tostring(code) .. ": " .. err)
  return out, err, code
end

local scripts = {}
local function script(source)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  scripts[#scripts + 1] = path
  return path
end

local function assert_clean_exit(err)
  assert.is_nil(err:find("left open", 1, true), err)
  assert.is_nil(err:find("did not close cleanly", 1, true), err)
end

describe("luafetch command line", function()
  teardown(function()
    for _, p in ipairs(scripts) do os.remove(p) end
  end)

  it("--version prints the version and exits 0", function()
    local out, err, code = run{ "--version" }
    assert.are.equal(0, code, err)
    assert.truthy(out:match("^luafetch %d+%.%d+%.%d+"), out)
  end)

  it("--help prints the usage on stdout and exits 0", function()
    local out, err, code = run{ "--help" }
    assert.are.equal(0, code, err)
    assert.truthy(out:find("usage", 1, true))
    for _, cmd in ipairs{ "run SCRIPT", "get", "test", "-e CODE", "--version" } do
      assert.truthy(out:find(cmd, 1, true), cmd)
    end
  end)

  it("no command is bad usage: exit 2 with the usage on stderr", function()
    local out, err, code = run{}
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.truthy(err:find("usage", 1, true))
  end)

  it("an unknown command exits 2", function()
    local out, err, code = run{ "frobnicate" }
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.truthy(err:find("frobnicate", 1, true), err)
    assert_clean_exit(err)
  end)

  it("run without a script and -e without code exit 2", function()
    assert.are.equal(2, select(3, run{ "run" }))
    assert.are.equal(2, select(3, run{ "-e" }))
  end)

  it("run passes arguments in `arg` and as the chunk's `...`", function()
    local path = script([[
      print(arg[0])
      print(#arg, arg[1], arg[2], arg[3])
      print(select("#", ...), ...)
    ]])
    local out, err, code = run{ "run", path, "one", "two words", "" }
    assert.are.equal(0, code, err)
    local lines = {}
    for line in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    assert.are.equal(path, lines[1])
    assert.are.equal("3\tone\ttwo words\t", lines[2])
    assert.are.equal("3\tone\ttwo words\t", lines[3])
  end)

  it("run with no arguments has an empty `arg` list", function()
    local out, err, code = run{ "run", script("print(#arg, select('#', ...))") }
    assert.are.equal(0, code, err)
    assert.are.equal("0\t0\n", out)
  end)

  it("an integer returned by the main chunk is the exit status", function()
    assert.are.equal(3, select(3, run{ "run", script("return 3") }))
    assert.are.equal(0, select(3, run{ "run", script("return 0") }))
    assert.are.equal(0, select(3, run{ "run", script("local x = 1") }))
    assert.are.equal(0, select(3, run{ "run", script("return 'not a number'") }))
  end)

  it("a returned number outside 0-255 warns and exits 1 instead of wrapping", function()
    for _, case in ipairs{ { "return 300", "300" }, { "return -1", "-1" }, { "return 256", "256" },
                           { "return 2.5", "2.5" } } do
      local out, err, code = run{ "run", script(case[1]) }
      assert.are.equal(1, code, case[1] .. ": " .. err)
      assert.are.equal("", out)
      assert.truthy(err:find("warning: the script returned " .. case[2], 1, true), err)
      assert.truthy(err:find("0-255", 1, true), err)
    end
    assert.are.equal(255, select(3, run{ "run", script("return 255") }))
    assert.are.equal(7, select(3, run{ "-e", "return 7.0" }))
  end)

  it("the returned status waits for the other tasks", function()
    local out, err, code = run{ "run", script([[
      local task = require "task"
      task.spawn(function() task.sleep(0.05); print("late") end)
      return 5
    ]]) }
    assert.are.equal(5, code, err)
    assert.are.equal("late\n", out)
  end)

  it("a syntax error exits 1 and names the script", function()
    local path = script("local x = = 1\n")
    local out, err, code = run{ "run", path }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find(path, 1, true), err)
    assert.truthy(err:find("1:", 1, true), err) -- the line
    assert_clean_exit(err)
  end)

  it("a missing script exits 1", function()
    local _, err, code = run{ "run", "/nonexistent/script.lua" }
    assert.are.equal(1, code)
    assert.truthy(err:find("/nonexistent/script.lua", 1, true), err)
  end)

  it("a runtime error exits 1 with a traceback", function()
    local path = script("local function f() error('kaput') end\nf()\n")
    local out, err, code = run{ "run", path }
    assert.are.equal(1, code)
    assert.truthy(err:find("kaput", 1, true), err)
    assert.truthy(err:find("traceback", 1, true), err)
  end)

  it("-e runs a chunk", function()
    local out, err, code = run{ "-e", "print(1 + 1); io.write('x')" }
    assert.are.equal(0, code, err)
    assert.are.equal("2\nx", out)
    assert.are.equal("", err)
  end)

  it("-e can use http and task at the top level", function()
    local out, err, code = run{ "-e", ("local r = require('http').get(%q); print(r.status, r.body)"):format(BASE .. "/bytes/3") }
    assert.are.equal(0, code, err)
    assert.are.equal("200\tabc\n", out)
  end)

  it("-e with a syntax error exits 1", function()
    local out, err, code = run{ "-e", "print(" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(#err > 0)
  end)

  it("error{exit_code = N, message = ...} exits N with the message and no traceback", function()
    local out, err, code = run{ "-e", "print('before'); error({ exit_code = 2, message = 'bad input given' })" }
    assert.are.equal(2, code)
    assert.are.equal("before\n", out)
    assert.truthy(err:find("bad input given", 1, true), err)
    assert.is_nil(err:find("traceback", 1, true), err)
    local _, err2, code2 = run{ "run", script("error({ exit_code = 7, message = 'seven' })") }
    assert.are.equal(7, code2)
    assert.truthy(err2:find("seven", 1, true))
  end)

  it("a bad HTTP_TIMEOUT is bad usage: exit 2", function()
    local _, err, code = run({ "-e", ("require('http').get(%q)"):format(BASE .. "/status/200") }, "HTTP_TIMEOUT=soon")
    assert.are.equal(2, code)
    assert.truthy(err:find("HTTP_TIMEOUT", 1, true), err)
  end)

  it("shuts down in order after idle pooled connections and cancelled requests", function()
    local path = script(([[
      local http, task = require "http", require "task"
      local base = %q
      -- idle keep-alive connections left in the pool
      local ts = {}
      for i = 1, 5 do ts[i] = task.spawn(function() return http.get(base .. "/delay/0.05") end) end
      for i = 1, 5 do
        local ok, res = ts[i]:join()
        assert(ok and res and res.status == 200)
      end
      -- a request cancelled while waiting for a silent server
      local silent = task.spawn(function() return http.get(base .. "/silence") end)
      -- a request cancelled while its name is being resolved
      local lookup = task.spawn(function() return http.get("http://nonexistent.invalid/") end)
      -- a request cancelled in the middle of a body
      local drip = task.spawn(function() return http.get(base .. "/drip?bytes=100&interval=0.01") end)
      task.sleep(0.1)
      silent:cancel()
      lookup:cancel()
      drip:cancel()
      -- a sleeping task cancelled
      local sleeper = task.spawn(function() task.sleep(60) end)
      task.sleep(0)
      sleeper:cancel()
      print("in_flight", http.stats().in_flight)
      return 0
    ]]):format(BASE))
    local out, err, code = run{ "run", path }
    assert.are.equal(0, code, err)
    assert.are.equal("in_flight\t0\n", out)
    assert.are.equal("", err)
  end)

  it("shuts down in order when the script fails with requests pooled", function()
    local out, err, code = run{ "-e", ("local http = require 'http'; assert(http.get(%q)); error('after a request')"):format(BASE .. "/bytes/1") }
    assert.are.equal(1, code)
    assert.truthy(err:find("after a request", 1, true))
    assert_clean_exit(err)
  end)

  it("shuts down in order after a deadlock with a request pooled", function()
    local _, err, code = run{ "-e", ("assert(require('http').get(%q)); require('task').semaphore(0):acquire()"):format(BASE .. "/bytes/1") }
    assert.are.equal(1, code)
    assert.truthy(err:find("deadlock", 1, true), err)
    assert_clean_exit(err)
  end)
end)

-- The first hour: scripts by name and their folder on package.path, the installed layout (man
-- page, completion, LuaLS stubs, docs, scripts and their example files) run from a temporary
-- prefix, the completion scripts checked by their shells, and the man page against `get --help`.
local ROOT = assert(os.getenv("LUAFETCH_ROOT"), "LUAFETCH_ROOT is not set (run tests/run_specs.sh)")

-- Runs a shell command line; returns stdout, stderr, exit code.
local function sh(cmdline)
  local errfile = os.tmpname()
  local f = assert(io.popen("( " .. cmdline .. " ) 2>" .. shell_quote(errfile) .. " </dev/null"))
  local out = f:read("a")
  local _, how, code = f:close()
  local ef = assert(io.open(errfile))
  local err = ef:read("a")
  ef:close()
  os.remove(errfile)
  assert.are.equal("exit", how)
  return out, err, code
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function files_in(dir, pattern)
  local out = {}
  local p = assert(io.popen("ls " .. shell_quote(dir)))
  for name in p:lines() do
    if name:match(pattern) then out[#out + 1] = name end
  end
  p:close()
  return out
end

-- `make install-data` (everything but the program, so nothing is rebuilt) into PREFIX, and the
-- program under test beside it, as `make install` puts it. Until the Makefile has the
-- install-data target, the same steps are taken here.
local function install(prefix)
  local _, _, has_target = sh(("make -s -C %s -n install-data PREFIX=%s >/dev/null"):format(shell_quote(ROOT), shell_quote(prefix)))
  if has_target == 0 then
    local _, err, code = sh(("make -s -C %s install-data PREFIX=%s"):format(shell_quote(ROOT), shell_quote(prefix)))
    assert.are.equal(0, code, err)
  else
    local share = prefix .. "/share"
    local steps = {
      { "plugins/*.lua", "/luafetch/plugins/" }, { "scripts/*.lua", "/luafetch/scripts/" },
      { "types/*.lua types/luarc.example.json", "/luafetch/types/" },
      { "types/plugins/*.lua", "/luafetch/types/plugins/" },
      { "docs/luafetch.1", "/man/man1/luafetch.1" },
      { "contrib/completion/luafetch.bash", "/bash-completion/completions/luafetch" },
      { "contrib/completion/_luafetch", "/zsh/site-functions/_luafetch" },
      { "README.md docs/*.md docs/*.png", "/doc/luafetch/" }, { "docs/scripts/*.md", "/doc/luafetch/scripts/" },
    }
    for _, s in ipairs(steps) do
      local dest = share .. s[2]
      local dir = dest:sub(-1) == "/" and dest or dest:match("^(.*)/")
      local _, err, code = sh(("cd %s && install -d %s && install -m 644 %s %s"):format(
        shell_quote(ROOT), shell_quote(dir), s[1], shell_quote(dest)))
      assert.are.equal(0, code, err)
    end
  end
  local _, err, code = sh(("install -d %s/bin && install -m 755 %s %s/bin/luafetch"):format(
    shell_quote(prefix), shell_quote(BIN), shell_quote(prefix)))
  assert.are.equal(0, code, err)
end

local function uninstall(prefix)
  local _, _, has_target = sh(("make -s -C %s -n uninstall PREFIX=%s >/dev/null"):format(shell_quote(ROOT), shell_quote(prefix)))
  if has_target == 0 then
    local _, err, code = sh(("make -s -C %s uninstall PREFIX=%s"):format(shell_quote(ROOT), shell_quote(prefix)))
    assert.are.equal(0, code, err)
  else
    local share = shell_quote(prefix .. "/share")
    sh(("rm -f %s/bin/luafetch %s/man/man1/luafetch.1 %s/bash-completion/completions/luafetch "
      .. "%s/zsh/site-functions/_luafetch && rm -rf %s/luafetch %s/doc/luafetch")
      :format(shell_quote(prefix), share, share, share, share, share))
  end
end

describe("luafetch run: scripts by name and their folder", function()
  it("puts the script's folder first on package.path, whatever the working directory", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. shell_quote(dir .. "/lib")))
    local f = assert(io.open(dir .. "/helper.lua", "w"))
    f:write("return { where = 'beside the script' }")
    f:close()
    f = assert(io.open(dir .. "/lib/init.lua", "w"))
    f:write("return 'init of lib'")
    f:close()
    f = assert(io.open(dir .. "/main.lua", "w"))
    f:write("print(require('helper').where, require('lib'), arg[0])")
    f:close()
    local out, err, code = sh(("cd / && %s run %s"):format(shell_quote(BIN), shell_quote(dir .. "/main.lua")))
    assert.are.equal(0, code, err)
    assert.are.equal("beside the script\tinit of lib\t" .. dir .. "/main.lua\n", out)
    os.execute("rm -rf " .. shell_quote(dir))
  end)

  it("a bare name that is no file and no installed script says where it looked", function()
    local _, err, code = sh(("cd / && %s run no_such_script_here"):format(shell_quote(BIN)))
    assert.are.equal(1, code)
    assert.truthy(err:find("no installed script of that name in ", 1, true), err)
  end)
end)

describe("the installed layout", function()
  local prefix
  setup(function()
    prefix = os.tmpname()
    os.remove(prefix)
    install(prefix)
  end)
  teardown(function()
    if prefix then os.execute("rm -rf " .. shell_quote(prefix)) end
  end)

  it("holds the program, man page, completion, stubs, docs, scripts and their examples", function()
    local want = {
      "bin/luafetch", "share/man/man1/luafetch.1", "share/bash-completion/completions/luafetch",
      "share/zsh/site-functions/_luafetch", "share/luafetch/types/luarc.example.json",
      "share/doc/luafetch/README.md", "share/doc/luafetch/deploy.md",
      "share/doc/luafetch/scripts/monitor.md", "share/luafetch/scripts/targets.example.lua",
    }
    for _, m in ipairs{ "http", "task", "fetcher", "schedule", "html", "thresholds" } do
      want[#want + 1] = "share/luafetch/types/" .. m .. ".lua"
    end
    -- a stub for every plugin, and every script installed
    for _, p in ipairs(files_in(ROOT .. "/plugins", "%.lua$")) do
      want[#want + 1] = "share/luafetch/types/plugins/" .. p
      want[#want + 1] = "share/luafetch/plugins/" .. p
    end
    for _, s in ipairs(files_in(ROOT .. "/scripts", "%.lua$")) do
      want[#want + 1] = "share/luafetch/scripts/" .. s
    end
    for _, path in ipairs(want) do
      assert.is_true(exists(prefix .. "/" .. path), path)
    end
    -- the stubs are LuaLS meta files and valid Lua
    for _, dir in ipairs{ "/share/luafetch/types", "/share/luafetch/types/plugins" } do
      for _, name in ipairs(files_in(prefix .. dir, "%.lua$")) do
        local path = prefix .. dir .. "/" .. name
        local f = assert(io.open(path))
        local text = f:read("a")
        f:close()
        assert.truthy(text:find("^%-%-%-@meta"), path)
        assert.truthy(load(text, "=" .. name), path)
      end
    end
  end)

  it("runs a script by name from the install, which finds its example files beside itself", function()
    local bin = shell_quote(prefix .. "/bin/luafetch")
    local out, err, code = sh(("cd / && %s run monitor --help"):format(bin))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("Usage: luafetch run monitor", 1, true), out)
    assert.truthy(out:find(prefix .. "/share/luafetch/scripts/targets.example.lua", 1, true), out)
    out, err, code = sh(("cd / && %s run health_check %s"):format(bin, shell_quote(BASE .. "/json")))
    assert.are.equal(0, code, err)
    assert.truthy(out:find("UP    " .. BASE .. "/json", 1, true), out)
    -- --config names the example relative to the installed script: it is found, its sources
    -- are fetched (the fixture has none of them: 404, exit 1), and the document is written
    out, err, code = sh(("cd / && %s run aggregate --config sources.example.lua --base %s --retries 0 --compact")
      :format(bin, shell_quote(BASE)))
    assert.are.equal(1, code, err)
    assert.truthy(out:find('"sources":{', 1, true), out)
    assert.truthy(err:find("users: status: HTTP 404", 1, true), err)
  end)

  it("has a man page that renders and names every option of `get --help`", function()
    local page, err, code = sh(("MANWIDTH=100 man -l %s"):format(shell_quote(prefix .. "/share/man/man1/luafetch.1")))
    assert.are.equal(0, code, err)
    assert.truthy(page:find("luafetch get", 1, true))
    local _, warnings = sh(("groff -man -Tutf8 -ww -z %s"):format(shell_quote(prefix .. "/share/man/man1/luafetch.1")))
    assert.are.equal("", warnings)
    local help = sh(shell_quote(BIN) .. " get --help")
    local plain = page:gsub(".\b", "") -- no overstrike, whatever the pager's settings
    local seen = 0
    for option in help:gmatch("%-%-[%w][%w%-]+") do
      seen = seen + 1
      assert.truthy(plain:find(option, 1, true), option .. " is not in the man page")
    end
    assert.is_true(seen > 20)
  end)

  it("has bash completion that completes commands, get's options and installed scripts", function()
    local script = prefix .. "/share/bash-completion/completions/luafetch"
    local _, err, code = sh("bash -n " .. shell_quote(script))
    assert.are.equal(0, code, err)
    local function complete(...)
      local words = { ... }
      local quoted = {}
      for i, w in ipairs(words) do quoted[i] = shell_quote(w) end
      local out, e, c = sh(("PATH=%s:$PATH bash -c %s"):format(shell_quote(prefix .. "/bin"), shell_quote(
        ("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _luafetch; printf '%%s\\n' \"${COMPREPLY[@]}\"")
          :format(shell_quote(script), table.concat(quoted, " "), #words - 1))))
      assert.are.equal(0, c, e)
      return "\n" .. out
    end
    assert.truthy(complete("luafetch", "g"):find("\nget\n", 1, true))
    assert.truthy(complete("luafetch", "get", "--ins"):find("\n--insecure\n", 1, true))
    assert.truthy(complete("luafetch", "get", "--json"):find("\n--json-lines\n", 1, true))
    local scripts = complete("luafetch", "run", "mo")
    assert.truthy(scripts:find("\nmonitor\n", 1, true), scripts)
    assert.truthy(scripts:find("\nmock_services\n", 1, true), scripts)
    -- a script's options come from its own --help
    local opts = complete("luafetch", "run", "monitor", "--on")
    assert.truthy(opts:find("\n--once\n", 1, true), opts)
    assert.truthy(opts:find("\n--on-change\n", 1, true), opts)
    -- every option of get --help is offered
    local all = complete("luafetch", "get", "-")
    for option in sh(shell_quote(BIN) .. " get --help"):gmatch("%-%-[%w][%w%-]+") do
      assert.truthy(all:find("\n" .. option .. "\n", 1, true), option)
    end
  end)

  it("has zsh completion that zsh accepts", function()
    local _, _, has_zsh = sh("command -v zsh >/dev/null")
    if has_zsh ~= 0 then
      pending("zsh is not installed: the zsh completion was not checked")
      return
    end
    local script = prefix .. "/share/zsh/site-functions/_luafetch"
    local _, err, code = sh("zsh -n " .. shell_quote(script))
    assert.are.equal(0, code, err)
    -- loaded by compinit from the installed folder, it defines the completer for luafetch
    local out, e2, c2 = sh(("HOME=%s zsh -f -c %s"):format(shell_quote(prefix), shell_quote(
      ("fpath=(%s $fpath); autoload -Uz compinit; compinit -u -d %s/zcompdump; print -r -- ${_comps[luafetch]}")
        :format(shell_quote(prefix .. "/share/zsh/site-functions"), shell_quote(prefix)))))
    assert.are.equal(0, c2, e2)
    assert.are.equal("_luafetch\n", out)
  end)

  it("goes away with uninstall", function()
    uninstall(prefix)
    for _, path in ipairs{ "bin/luafetch", "share/man/man1/luafetch.1", "share/luafetch",
                           "share/doc/luafetch", "share/bash-completion/completions/luafetch",
                           "share/zsh/site-functions/_luafetch" } do
      assert.is_false(exists(prefix .. "/" .. path), path)
    end
  end)
end)
