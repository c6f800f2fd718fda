-- The edge's status-code and error-shape filter (runs first in Envoy's HTTP filter chain).
-- Request side: strips any caller-sent identity header (only jwt_authn may set it, after us) and
-- remembers whether the call is native gRPC. Response side, for HTTP/JSON callers only: applies
-- the method's success code sent by the core (x-f7t-http-status), empties 204 bodies, and rewrites
-- every error body into FirecREST's shape {"errorType","message","data","user"}.

local IDENTITY_HEADER = "__IDENTITY_HEADER__"
local SUCCESS_HEADER = "x-f7t-http-status"
local REASON_HEADER = "x-f7t-reason"

local function percent_decode(s)
  return (string.gsub(s, "%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- reasons whose HTTP status differs from Envoy's gRPC->HTTP mapping
local REASON_STATUS = { PAYLOAD_TOO_LARGE = "413", TIMEOUT = "408" }

---------------------------------------------------------------- a small, strict JSON codec
local json = {}

local function skip(s, i)
  local _, e = string.find(s, "^[ \n\r\t]*", i)
  return e + 1
end

local escapes = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t' }

local function utf8char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local decode_value

local function decode_string(s, i)
  local out, j = {}, i + 1
  while true do
    local c = string.sub(s, j, j)
    if c == "" then error("unterminated string") end
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      local n = string.sub(s, j + 1, j + 1)
      if n == "u" then
        local cp = tonumber(string.sub(s, j + 2, j + 5), 16)
        if not cp then error("bad \\u escape") end
        j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and string.sub(s, j, j + 1) == "\\u" then
          local lo = tonumber(string.sub(s, j + 2, j + 5), 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            j = j + 6
          end
        end
        out[#out + 1] = utf8char(cp)
      else
        local e = escapes[n]
        if not e then error("bad escape") end
        out[#out + 1] = e
        j = j + 2
      end
    else
      out[#out + 1] = c
      j = j + 1
    end
  end
end

decode_value = function(s, i)
  i = skip(s, i)
  local c = string.sub(s, i, i)
  if c == "{" then
    local obj = {}
    i = skip(s, i + 1)
    if string.sub(s, i, i) == "}" then return obj, i + 1 end
    while true do
      if string.sub(s, i, i) ~= '"' then error("expected key") end
      local k
      k, i = decode_string(s, i)
      i = skip(s, i)
      if string.sub(s, i, i) ~= ":" then error("expected colon") end
      obj[k], i = decode_value(s, i + 1)
      i = skip(s, i)
      local d = string.sub(s, i, i)
      if d == "}" then return obj, i + 1 end
      if d ~= "," then error("expected comma") end
      i = skip(s, i + 1)
    end
  elseif c == "[" then
    local arr = {}
    i = skip(s, i + 1)
    if string.sub(s, i, i) == "]" then return arr, i + 1 end
    while true do
      arr[#arr + 1], i = decode_value(s, i)
      i = skip(s, i)
      local d = string.sub(s, i, i)
      if d == "]" then return arr, i + 1 end
      if d ~= "," then error("expected comma") end
      i = i + 1
    end
  elseif c == '"' then
    return decode_string(s, i)
  elseif string.sub(s, i, i + 3) == "true" then return true, i + 4
  elseif string.sub(s, i, i + 4) == "false" then return false, i + 5
  elseif string.sub(s, i, i + 3) == "null" then return nil, i + 4
  else
    local num = string.match(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not num or num == "" then error("unexpected character") end
    return tonumber(num), i + #num
  end
end

function json.decode(s)
  local v, i = decode_value(s, 1)
  if skip(s, i) <= #s then error("trailing data") end
  return v
end

local function encode_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    local m = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return m[c] or string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function json.encode_error(message, reason, user, metadata)
  local data = "null"
  if reason then
    local parts = { '"reason":' .. encode_string(reason) }
    if metadata then
      for k, v in pairs(metadata) do
        if type(v) == "string" then parts[#parts + 1] = encode_string(k) .. ":" .. encode_string(v) end
      end
    end
    data = "{" .. table.concat(parts, ",") .. "}"
  end
  local u = user and encode_string(user) or "null"
  return '{"errorType":"error","message":' .. encode_string(message) .. ',"data":' .. data .. ',"user":' .. u .. "}"
end

---------------------------------------------------------------- methods
-- The API's paths (from edge/openapi.json, rendered in by edge/envoy_config.py) and their methods:
-- a method the API never declares (TRACE, CONNECT...), or one a known path does not declare, is
-- answered 405 with Allow. OPTIONS (CORS preflight) and unknown paths go on as before.
local ROUTES = __ROUTES__
local API_METHODS = __API_METHODS__

local function method_not_allowed(method, path)
  if method == "OPTIONS" then return false end
  if not API_METHODS[method] then return true, "" end
  local p = path
  if #p > 1 and string.sub(p, -1) == "/" then p = string.sub(p, 1, -2) end
  for _, r in ipairs(ROUTES) do
    if string.find(p, r[1]) then
      if r[2][method] then return false end
      return true, r[3]
    end
  end
  return false
end

---------------------------------------------------------------- the filter
function envoy_on_request(h)
  local headers = h:headers()
  do
    local ct0 = headers:get("content-type") or ""
    if string.sub(ct0, 1, 16) ~= "application/grpc" then
      local path0 = string.gsub(headers:get(":path") or "", "%?.*$", "")
      local refused, allow = method_not_allowed(headers:get(":method") or "", path0)
      if refused then
        -- a local reply: the connection manager's mapper gives it FirecREST's error shape
        local reply = { [":status"] = "405" }
        if allow ~= "" then reply["allow"] = allow end
        h:respond(reply, "Method not allowed")
        return
      end
    end
  end
  headers:remove(IDENTITY_HEADER)
  local ct = headers:get("content-type") or ""
  local native = string.sub(ct, 1, 16) == "application/grpc" and string.sub(ct, 1, 21) ~= "application/grpc-web"
  h:streamInfo():dynamicMetadata():set("f7t", "native", native and "1" or "0")
  -- FirecREST accepts `path` as an alias of `sourcePath` in filesystem request bodies and
  -- pyfirecrest sends it (chmod, chown, transfer/upload...). The contract keeps the spec's one
  -- name: copy the alias over here, or the transcoder would drop it as an unknown field.
  local p = string.gsub(headers:get(":path") or "", "%?.*$", "")
  local m = headers:get(":method")
  if not native and (m == "POST" or m == "PUT") and string.find(p, "^/filesystem/")
      and string.find(ct, "json", 1, true) then
    headers:remove("content-length")
    local body = h:body()
    if body and body:length() > 0 and body:length() < 65536 then
      local raw = body:getBytes(0, body:length())
      local ok, req = pcall(json.decode, raw)
      if ok and type(req) == "table" and type(req.path) == "string"
          and req.sourcePath == nil and req.source_path == nil then
        local at = string.find(raw, "{", 1, true)
        body:setBytes(string.sub(raw, 1, at) .. '"sourcePath":' .. encode_string(req.path) .. ","
          .. string.sub(raw, at + 1))
      end
    end
  end
end

local STATUS_TEXT = {
  ["400"] = "Bad request", ["401"] = "Invalid or missing access token", ["403"] = "Forbidden",
  ["404"] = "Not found", ["405"] = "Method not allowed", ["408"] = "Request timeout",
  ["413"] = "Payload too large", ["500"] = "Internal error", ["501"] = "Not implemented",
  ["502"] = "Bad gateway", ["503"] = "Service unavailable", ["504"] = "Gateway timeout",
}

function envoy_on_response(h)
  local md = h:streamInfo():dynamicMetadata():get("f7t")
  if md and md["native"] == "1" then return end
  local headers = h:headers()
  local status = headers:get(":status") or "200"
  local code = headers:get(SUCCESS_HEADER)
  headers:remove(SUCCESS_HEADER)
  headers:replace("f7t-appversion", "__APP_VERSION__")
  headers:remove("grpc-accept-encoding")
  if tonumber(status) < 400 then
    headers:remove("grpc-status")
    headers:remove("grpc-message")
    if code and status == "200" then
      headers:replace(":status", code)
      if code == "204" then
        headers:remove("content-type")
        headers:remove("content-length")
        h:body(true):setBytes("")
      end
    end
    -- over HTTP/2 the transcoder passes the gRPC trailers on: a REST client has no use for them
    local trailers = h:trailers()
    if trailers then
      trailers:remove("grpc-status")
      trailers:remove("grpc-message")
    end
    return
  end
  -- an error. The core's errors arrive trailers-only: grpc-message and x-f7t-reason are headers.
  local message = headers:get("grpc-message")
  local reason = headers:get(REASON_HEADER)
  local metadata = nil
  for _, name in ipairs({ "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-accept-encoding", REASON_HEADER }) do
    headers:remove(name)
  end
  if message then message = percent_decode(message) end
  local new_status = (reason and REASON_STATUS[reason]) or status
  if new_status ~= status then headers:replace(":status", new_status) end
  headers:replace("content-type", "application/json")
  headers:remove("content-length")
  local body = h:body(true)
  if not message or message == "" then
    -- no gRPC status: a body from the transcoder (google.rpc.Status JSON) or plain text
    local raw = body:length() > 0 and body:getBytes(0, body:length()) or ""
    local ok, parsed = pcall(json.decode, raw)
    if ok and type(parsed) == "table" then
      if parsed.errorType ~= nil then return end -- already FirecREST-shaped (local reply mapper)
      if type(parsed.message) == "string" then message = parsed.message end
      if type(parsed.details) == "table" then
        for _, d in ipairs(parsed.details) do
          if type(d) == "table" and type(d.reason) == "string" then
            reason = d.reason
            if type(d.metadata) == "table" then metadata = d.metadata end
          end
        end
      end
    elseif raw ~= "" and #raw < 1024 and string.find(raw, "^[%w%p ]+$") then
      message = raw
    end
  end
  if not message or message == "" then message = STATUS_TEXT[status] or "Error" end
  body:setBytes(json.encode_error(message, reason, nil, metadata))
end
