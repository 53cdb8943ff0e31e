-- multipart.lua — multipart/form-data bodies (RFC 7578) for the `multipart` option, with the part
-- headers, file names and content types curl -F sends. Without file parts the body is one string;
-- with them it is a function giving the pieces (files read 64 KiB at a time, as they are sent)
-- and its exact size, so a large upload costs no memory and goes with Content-Length.
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

M.PIECE = 64 * 1024

-- A file part's content: { path=, size= } for a file whose size is known (read as it is sent),
-- or the whole content as a string for one whose size says nothing (a pipe or /dev/stdin has
-- none, a /proc file says 0 and has data); nil, message when it cannot be read (a directory
-- opens but does not read).
local function file_content(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, "multipart: cannot open " .. tostring(err)
  end
  local probe, rerr = f:read(0) -- "" (data), nil (the end of an empty file), or nil, message
  if probe == nil and rerr then
    f:close()
    return nil, "multipart: cannot read " .. path .. ": " .. tostring(rerr)
  end
  local size = f:seek("end")
  if size and (size > 0 or probe == nil) then
    f:close()
    return { path = path, size = size }
  end
  if size then f:seek("set") end
  local data, derr = f:read("a")
  f:close()
  if not data then
    return nil, "multipart: cannot read " .. path .. ": " .. tostring(derr)
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
    content, err = file_content(p.file)
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

-- The body as a function over `segments` (strings, and { path=, size= } files): each call gives
-- the next piece, nil at the end. A file that no longer has its size fails the call.
local function pieces(segments)
  local i, f, left = 1, nil, 0
  return function()
    while true do
      local seg = segments[i]
      if seg == nil then return nil end
      if type(seg) == "string" then
        i = i + 1
        if seg ~= "" then return seg end
      else
        if not f then
          local err
          f, err = io.open(seg.path, "rb")
          if not f then error("multipart: cannot open " .. tostring(err), 0) end
          left = seg.size
        end
        local data = left > 0 and f:read(math.min(M.PIECE, left)) or nil
        if left > 0 and not data then
          f:close()
          f = nil
          error(("multipart: %s is shorter than its %d bytes when the upload began"):format(seg.path, seg.size), 0)
        end
        if data then
          left = left - #data
          return data
        end
        f:close()
        f, i = nil, i + 1
      end
    end
  end
end

---Builds a multipart/form-data body.
---@param parts table array of { name=, value= [, filename=, content_type=] } or
---                   { name=, file=PATH [, filename=, content_type=] }
---@return string|function|nil body  a string, or with file parts a function giving the pieces
---@return string content_type_or_err "multipart/form-data; boundary=…", or the error
---@return integer|nil size  with file parts: the body's size (its Content-Length)
---@return function|nil again  with file parts: a new body function, for a resend (307/308)
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
  -- A boundary must not occur in any part; a random one (64 bits) almost never does: the values
  -- are checked, files are not read twice for it (as curl does not).
  local b
  repeat
    b = boundary()
    local clash = false
    for i = 1, #contents do
      if type(contents[i]) == "string" and contents[i]:find(b, 1, true) then
        clash = true
        break
      end
    end
  until not clash
  local out, size, files = {}, 0, false
  for i = 1, #heads do
    local content = contents[i]
    out[#out + 1] = "--" .. b .. "\r\n" .. heads[i]
    out[#out + 1] = content
    out[#out + 1] = "\r\n"
    files = files or type(content) == "table"
  end
  out[#out + 1] = "--" .. b .. "--\r\n"
  local content_type = "multipart/form-data; boundary=" .. b
  if not files then
    return table.concat(out), content_type
  end
  -- the strings between the files joined, so a piece is never a few bytes
  local segments, run = {}, {}
  for _, seg in ipairs(out) do
    if type(seg) == "string" then
      run[#run + 1] = seg
      size = size + #seg
    else
      segments[#segments + 1] = table.concat(run)
      segments[#segments + 1] = seg
      run = {}
      size = size + seg.size
    end
  end
  segments[#segments + 1] = table.concat(run)
  return pieces(segments), content_type, size, function() return pieces(segments) end
end

return M
