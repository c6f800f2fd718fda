-- The edge's status-code and error-shape filter (runs first in Envoy's HTTP filter chain).
-- Request side: strips any caller-sent identity header (only jwt_authn may set it, after us) and
-- remembers whether the call is native gRPC. Response side, for HTTP/JSON callers only: applies
-- the method's success code sent by the core (x-f7t-http-status), empties 204 bodies, and rewrites
-- every error body into FirecREST's shape {"errorType","message","data","user"}.

local IDENTITY_HEADER = "__IDENTITY_HEADER__"
local SUCCESS_HEADER = "x-f7t-http-status"
local REASON_HEADER = "x-f7t-reason"
local USER_HEADER = "x-f7t-caller"
local MESSAGE_HEADER = "x-f7t-message"
local REASON_OUT_HEADER = "f7t-error-reason" -- the ErrorInfo reason, for REST callers

local function percent_decode(s)
  return (string.gsub(s, "%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- reasons whose HTTP status differs from Envoy's gRPC->HTTP mapping
local REASON_STATUS = { PAYLOAD_TOO_LARGE = "413", TIMEOUT = "408" }

---------------------------------------------------------------- a small, strict JSON codec
-- null decodes to json.null (so a key with a null value survives), an array keeps a marker (so an
-- empty one stays []), a number keeps its text (so it is written back exactly as it came).
local json = { null = setmetatable({}, { __tostring = function() return "null" end }) }
local ARRAY = {}
local NUMBER = {}

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
    local k = string.find(s, '["\\]', j)
    if not k then error("unterminated string") end
    if k > j then out[#out + 1] = string.sub(s, j, k - 1) end
    j = k
    local c = string.sub(s, j, j)
    if c == '"' then return table.concat(out), j + 1 end
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
    local arr = setmetatable({}, ARRAY)
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
  elseif string.sub(s, i, i + 3) == "null" then return json.null, i + 4
  else
    local num = string.match(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not num or num == "" then error("unexpected character") end
    return setmetatable({ raw = num }, NUMBER), i + #num
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

local function encode_value(v, out)
  local t = type(v)
  if t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    out[#out + 1] = string.format("%.17g", v)
  elseif v == json.null or v == nil then
    out[#out + 1] = "null"
  else
    local mt = getmetatable(v)
    if mt == NUMBER then
      out[#out + 1] = v.raw
    elseif mt == ARRAY then
      out[#out + 1] = "["
      for k, e in ipairs(v) do
        if k > 1 then out[#out + 1] = "," end
        encode_value(e, out)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      local first = true
      for k, e in pairs(v) do
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = encode_string(k)
        out[#out + 1] = ":"
        encode_value(e, out)
      end
      out[#out + 1] = "}"
    end
  end
end

function json.encode(v)
  local out = {}
  encode_value(v, out)
  return table.concat(out)
end

-- FirecREST v2's error body: {"errorType","message","causedBy","data","user"}, data null as it
-- sends it (the machine-readable reason travels in the f7t-error-reason header instead)
function json.encode_error(message, user)
  local u = user and encode_string(user) or "null"
  return '{"errorType":"error","message":' .. encode_string(message) .. ',"causedBy":null,"data":null'
    .. ',"user":' .. u .. "}"
end

---------------------------------------------------------------- nulls where FirecREST has them
-- FirecREST v2 writes every field of its models, null when unknown; the transcoder leaves out a
-- field that is not set. SCHEMA (generated from the descriptor set by edge/envoy_config.py) lists,
-- per response message, the JSON keys that are null when absent (`optional` scalars and message
-- fields) and the nested messages to walk: {key = {nullable, nested message or false, repeated}}.
local SCHEMA = __NULLABLE_SCHEMA__

local function fill_nulls(obj, tname)
  local spec = SCHEMA[tname]
  if not spec or type(obj) ~= "table" or getmetatable(obj) ~= nil then return end
  for key, f in pairs(spec) do
    local v = obj[key]
    if v == nil then
      if f[1] then obj[key] = json.null end
    elseif f[2] and type(v) == "table" then
      if f[3] then
        for _, e in ipairs(v) do fill_nulls(e, f[2]) end
      else
        fill_nulls(v, f[2])
      end
    end
  end
end

---------------------------------------------------------------- field names as the caller wrote them
local function collect_camel_keys(v, out)
  if type(v) ~= "table" or getmetatable(v) == NUMBER or v == json.null then return end
  for k, e in pairs(v) do
    -- the keys that name a field in one of its two spellings (camelCase or snake_case)
    if type(k) == "string" and (string.find(k, "%l%u") or string.find(k, "_")) and #out < 64 then
      out[#out + 1] = k
    end
    collect_camel_keys(e, out)
  end
end

local function camel_of(snake)
  return (string.gsub(snake, "_(%l)", function(c) return string.upper(c) end))
end

local JSON_TYPE = {
  STRING = "a string", BOOL = "true or false", MESSAGE = "an object", ENUM = "a string",
  INT32 = "an integer", INT64 = "an integer", UINT32 = "an integer", UINT64 = "an integer",
  SINT32 = "an integer", SINT64 = "an integer", DOUBLE = "a number", FLOAT = "a number",
}

-- A 400's message in the caller's terms: a field in snake_case becomes camelCase where the caller
-- wrote it so, and the transcoder's protobuf wording ("invalid value 5 for type TYPE_STRING")
-- becomes JSON's ("must be a string, got 5").
local function caller_terms(message, camel)
  message = string.gsub(message, "invalid value (.-) for type TYPE_(%u+%d*)", function(value, t)
    return "must be " .. (JSON_TYPE[t] or string.lower(t)) .. ", got " .. value
  end)
  message = string.gsub(message, "^: Proto field is not repeating, cannot start list%.?",
    "the request body has a list where an object is expected")
  message = string.gsub(message, "^Unexpected token%.", "the request body is not valid JSON: unexpected token")
  if camel and camel ~= "" then
    message = string.gsub(message, "[%a][%w]*_[%w_]+", function(snake)
      local c = camel_of(snake)
      if string.find(camel, " " .. c .. " ", 1, true) then return c end
      return snake
    end)
  end
  return message
end

---------------------------------------------------------------- methods
-- The API's paths (from edge/openapi.json, rendered in by edge/envoy_config.py) and their methods:
-- a method the API never declares (TRACE, CONNECT...), or one a known path does not declare, is
-- answered 405 with Allow. OPTIONS (CORS preflight) and unknown paths go on as before.
local ROUTES = __ROUTES__
local API_METHODS = __API_METHODS__

local function method_not_allowed(method, path)
  if method == "OPTIONS" then return false end
  local p = path
  if #p > 1 and string.sub(p, -1) == "/" then p = string.sub(p, 1, -2) end
  for _, r in ipairs(ROUTES) do
    if string.find(p, r[1]) then
      if r[2][method] then return false end
      return true, r[3]
    end
  end
  if not API_METHODS[method] then return true, "" end
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
  h:streamInfo():dynamicMetadata():set("f7t", "token", headers:get("authorization") and "1" or "0")
  -- FirecREST accepts `path` as an alias of `sourcePath` in filesystem request bodies and
  -- pyfirecrest sends it (chmod, chown, transfer/upload...). The contract keeps the spec's one
  -- name: copy the alias over here, or the transcoder would drop it as an unknown field.
  local full_path = headers:get(":path") or ""
  local p = string.gsub(full_path, "%?.*$", "")
  local m = headers:get(":method")
  -- query parameters count as written too (?time_window=... names time_window in an error)
  local written = {}
  for k in string.gmatch(string.match(full_path, "%?(.*)$") or "", "([^&=]+)=?[^&]*") do
    if (string.find(k, "%l%u") or string.find(k, "_")) and #written < 32 then written[#written + 1] = k end
  end
  if #written > 0 then
    h:streamInfo():dynamicMetadata():set("f7t", "camel", " " .. table.concat(written, " ") .. " ")
  end
  if not native and (m == "POST" or m == "PUT") and string.find(ct, "json", 1, true) then
    headers:remove("content-length")
    local body = h:body()
    if body and body:length() > 0 and body:length() < 65536 then
      local raw = body:getBytes(0, body:length())
      local ok, req = pcall(json.decode, raw)
      if ok and type(req) == "table" then
        -- the camelCase keys the caller wrote, so error messages name fields as they were written
        local camel = written
        collect_camel_keys(req, camel)
        h:streamInfo():dynamicMetadata():set("f7t", "camel", " " .. table.concat(camel, " ") .. " ")
      end
      if ok and type(req) == "table" and type(req.path) == "string" and string.find(p, "^/filesystem/")
          and (req.sourcePath == nil or req.sourcePath == json.null)
          and (req.source_path == nil or req.source_path == json.null) then
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
  local message_type = headers:get(MESSAGE_HEADER)
  headers:remove(SUCCESS_HEADER)
  headers:remove(MESSAGE_HEADER)
  headers:replace("f7t-appversion", "__APP_VERSION__")
  headers:remove("grpc-accept-encoding")
  -- read before any h:body() call: the headers object is out of scope after it
  local content_type = headers:get("content-type") or ""
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
    -- Server-Sent Events (a task's :events): pass each event on as it comes. h:trailers() would
    -- hold the whole body back until the stream ends.
    if string.sub(content_type, 1, 17) == "text/event-stream" then
      headers:replace("cache-control", "no-cache")
      return
    end
    local fill = code ~= "204" and message_type and SCHEMA[message_type]
      and string.find(content_type, "json", 1, true)
    if fill then
      headers:remove("content-length")
      local body = h:body(true)
      local ok, doc = pcall(json.decode, body:getBytes(0, body:length()))
      if ok then
        fill_nulls(doc, message_type)
        body:setBytes(json.encode(doc))
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
  local user = headers:get(USER_HEADER)
  local metadata = nil
  for _, name in ipairs({ "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-accept-encoding",
                          REASON_HEADER, USER_HEADER }) do
    headers:remove(name)
  end
  if message then message = percent_decode(message) end
  local new_status = (reason and REASON_STATUS[reason]) or status
  if new_status ~= status then headers:replace(":status", new_status) end
  if reason then headers:replace(REASON_OUT_HEADER, reason) end
  headers:replace("content-type", "application/json")
  headers:remove("content-length")
  local body = h:body(true)
  if not message or message == "" then
    -- no gRPC status: a body from the transcoder (google.rpc.Status JSON) or plain text
    local raw = body:length() > 0 and body:getBytes(0, body:length()) or ""
    local ok, parsed = pcall(json.decode, raw)
    if ok and type(parsed) == "table" then
      if parsed.errorType ~= nil then -- already FirecREST-shaped (local reply mapper)
        if status == "401" then -- jwt_authn's reasons, in FirecREST v2's words
          local text = (md and md["token"] == "1") and "Access token is invalid." or "Not authenticated"
          if parsed.message == "Jwt is expired" then text = "Access token expired" end
          body:setBytes(json.encode_error(text, nil))
        elseif status == "400" and type(parsed.message) == "string" then -- the transcoder's
          body:setBytes(json.encode_error(caller_terms(parsed.message, md and md["camel"]), nil))
        end
        return
      end
      if type(parsed.user) == "string" then user = parsed.user end
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
  if new_status == "400" then
    message = caller_terms(message, md and md["camel"])
    if metadata and type(metadata.field) == "string" and string.find(metadata.field, "_") then
      -- a field the caller did not write in snake_case (or not at all): its camelCase JSON name
      local written = md and md["camel"] or ""
      local field = metadata.field
      if not string.find(written, " " .. field .. " ", 1, true) then
        local c = camel_of(field)
        message = string.gsub(message, "%f[%w_]" .. string.gsub(field, "%p", "%%%0") .. "%f[^%w_]", c)
        metadata.field = c
      end
    end
  end
  body:setBytes(json.encode_error(message, user))
end
