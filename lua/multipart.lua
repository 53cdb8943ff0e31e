-- multipart.lua — multipart/form-data bodies (RFC 7578) for the `multipart` option, with the part
-- headers, file names and content types curl -F sends. The body is built as one string, files
-- read whole; streaming files from disk comes with request bodies as streams.
local M = {}

-- curl's table (lib/mime.c): a file part's type comes from its path's extension, a value part
-- that has a filename from that name's; case does not matter.
local TYPES = {
  gif = "image/gif", jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png",
  svg = "image/svg+xml", txt = "text/plain", htm = "text/html", html = "text/html",
  pdf = "application/pdf", xml = "application/xml",
}

local function type_for(name)
  local ext = name:match("%.([^./]+)$")
  return ext and TYPES[ext:lower()]
end

-- A quoted-string parameter as browsers and curl write it (HTML's form encoding): '"', CR and LF
-- percent-encoded, everything else as it is.
local ESCAPES = { ['"'] = "%22", ["\r"] = "%0D", ["\n"] = "%0A" }
local function quoted(s)
  return '"' .. s:gsub('["\r\n]', ESCAPES) .. '"'
end

local function basename(path)
  return path:match("([^/]*)$")
end

local function boundary()
  local t = {}
  for i = 1, 8 do
    t[i] = ("%02x"):format(math.random(0, 255))
  end
  return ("-"):rep(24) .. table.concat(t)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, "multipart: cannot open " .. tostring(err)
  end
  local data, rerr = f:read("a")
  f:close()
  if not data then
    return nil, "multipart: cannot read " .. path .. ": " .. tostring(rerr)
  end
  return data
end

-- One part's head and content; nil, message when the part is malformed or its file unreadable.
local function part(p, i)
  if type(p) ~= "table" then
    return nil, "multipart part " .. i .. " must be a table { name=, value= } or { name=, file= }"
  end
  if type(p.name) ~= "string" then
    return nil, "multipart part " .. i .. ": name must be a string"
  end
  for _, k in ipairs{ "filename", "content_type", "file" } do
    if p[k] ~= nil and type(p[k]) ~= "string" then
      return nil, "multipart part " .. i .. ": " .. k .. " must be a string"
    end
  end
  local content, filename, ctype = nil, p.filename, p.content_type
  if p.file ~= nil then
    if p.value ~= nil then
      return nil, "multipart part " .. i .. ": give value or file, not both"
    end
    local err
    content, err = read_file(p.file)
    if not content then
      return nil, err
    end
    filename = filename or basename(p.file)
    ctype = ctype or type_for(p.file) or "application/octet-stream"
  else
    local v = p.value
    if type(v) == "number" then
      v = tostring(v)
    elseif type(v) ~= "string" then
      return nil, "multipart part " .. i .. ": value must be a string (or give file=)"
    end
    content = v
    ctype = ctype or (filename and type_for(filename))
  end
  if ctype and ctype:find("[\r\n]") then
    return nil, "multipart part " .. i .. ": content_type contains CR or LF"
  end
  local head = "Content-Disposition: form-data; name=" .. quoted(p.name)
  if filename then
    head = head .. "; filename=" .. quoted(filename)
  end
  if ctype then
    head = head .. "\r\nContent-Type: " .. ctype
  end
  return head .. "\r\n\r\n", content
end

---Builds a multipart/form-data body.
---@param parts table array of { name=, value= [, filename=, content_type=] } or
---                   { name=, file=PATH [, filename=, content_type=] }
---@return string|nil body
---@return string content_type_or_err "multipart/form-data; boundary=…", or the error
function M.build(parts)
  if type(parts) ~= "table" then
    return nil, "multipart must be an array of parts"
  end
  local heads, contents = {}, {}
  for i = 1, #parts do
    local head, content = part(parts[i], i)
    if not head then
      return nil, content
    end
    heads[i], contents[i] = head, content
  end
  if next(parts) ~= nil and #parts == 0 then
    return nil, "multipart must be an array of parts"
  end
  -- A boundary must not occur in any part; a random one almost never does, but check.
  local b
  repeat
    b = boundary()
    local clash = false
    for i = 1, #contents do
      if contents[i]:find(b, 1, true) then
        clash = true
        break
      end
    end
  until not clash
  local out = {}
  for i = 1, #heads do
    out[#out + 1] = "--" .. b .. "\r\n" .. heads[i]
    out[#out + 1] = contents[i]
    out[#out + 1] = "\r\n"
  end
  out[#out + 1] = "--" .. b .. "--\r\n"
  return table.concat(out), "multipart/form-data; boundary=" .. b
end

return M
