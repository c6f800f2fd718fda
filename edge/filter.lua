-- The edge's status-code and error-shape filter (runs first in Envoy's HTTP filter chain).
-- Request side: strips any caller-sent identity header (only jwt_authn may set it, after us) and
-- remembers whether the call is native gRPC. Response side, for HTTP/JSON callers only: applies
-- the method's success code sent by the core (x-f7t-http-status), empties 204 bodies, and rewrites
-- every error body into FirecREST's shape {"errorType","message","data","user"}.

local IDENTITY_HEADER = "__IDENTITY_HEADER__"
local SUCCESS_HEADER = "x-f7t-http-status"
local REASON_HEADER = "x-f7t-reason"
local USER_HEADER = "x-f7t-caller"
local REST_HEADER = "x-f7t-rest" -- marks an HTTP/JSON call for the core (core/api/restjson.py)
local READ_HEADER = "x-f7t-read" -- marks a REST read, which Envoy's route retries more readily
local REASON_OUT_HEADER = "f7t-error-reason" -- the ErrorInfo reason, for REST callers

local function percent_decode(s)
  return (string.gsub(s, "%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- reasons whose HTTP status differs from Envoy's gRPC->HTTP mapping
local REASON_STATUS = { PAYLOAD_TOO_LARGE = "413", TIMEOUT = "408" }

---------------------------------------------------------------- JSON text
-- No JSON codec here: the core writes every response body (core/api/restjson.py). The filter only
-- writes error bodies and reads one string out of the small ones Envoy writes itself.
local function encode_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    local m = { ['"'] = '\\"', ['\\'] = '\\\\', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
    return m[c] or string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

local escapes = { ['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t' }

local function utf8char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40) end
  return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- the value of the first "key":"..." string member in a JSON text (nil when there is none)
local function string_member(raw, key)
  local _, e = string.find(raw, '"' .. key .. '"%s*:%s*"')
  if not e then return nil end
  local out, j = {}, e + 1
  while true do
    local k = string.find(raw, '["\\]', j)
    if not k then return nil end
    if k > j then out[#out + 1] = string.sub(raw, j, k - 1) end
    if string.sub(raw, k, k) == '"' then return table.concat(out) end
    local n = string.sub(raw, k + 1, k + 1)
    if n == "u" then
      local cp = tonumber(string.sub(raw, k + 2, k + 5), 16)
      if not cp then return nil end
      out[#out + 1] = utf8char(cp)
      j = k + 6
    else
      out[#out + 1] = escapes[n] or n
      j = k + 2
    end
  end
end

-- FirecREST v2's error body: {"errorType","message","causedBy","data","user"}, data null as it
-- sends it (the machine-readable reason travels in the f7t-error-reason header instead)
local function error_body(message, user)
  local u = user and encode_string(user) or "null"
  return '{"errorType":"error","message":' .. encode_string(message) .. ',"causedBy":null,"data":null'
    .. ',"user":' .. u .. "}"
end

---------------------------------------------------------------- field names as the caller wrote them
-- the keys a JSON request body names a field by, in one of its two spellings (camelCase or snake_case):
-- a scan for "key": (a string value that happens to look like one only adds a name to the list)
-- a name in one of the two spellings (camelCase or snake_case), added while the list is short
local function add_field_name(k, out, most)
  if (string.find(k, "%l%u") or string.find(k, "_")) and #out < most then out[#out + 1] = k end
end

local function collect_camel_keys(raw, out)
  for k in string.gmatch(raw, '"([%w_]+)"%s*:') do add_field_name(k, out, 64) end
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
  -- an HTTP/JSON call (the transcoder turns it into gRPC): the core answers it in FirecREST's JSON
  local m = headers:get(":method")
  headers:remove(REST_HEADER)
  headers:remove(READ_HEADER)
  if string.sub(ct, 1, 16) ~= "application/grpc" then
    headers:add(REST_HEADER, "1")
    -- a read: Envoy may send it again to the next core (see the route that matches this header)
    if m == "GET" or m == "HEAD" then headers:add(READ_HEADER, "1") end
  end
  local full_path = headers:get(":path") or ""
  -- query parameters count as written too (?time_window=... names time_window in an error)
  local written = {}
  for k in string.gmatch(string.match(full_path, "%?(.*)$") or "", "([^&=]+)=?[^&]*") do
    add_field_name(k, written, 32)
  end
  if not native and (m == "POST" or m == "PUT") and string.find(ct, "json", 1, true) then
    local body = h:body()
    if body and body:length() > 0 and body:length() < 65536 then
      collect_camel_keys(body:getBytes(0, body:length()), written)
    end
  end
  if #written > 0 then
    h:streamInfo():dynamicMetadata():set("f7t", "camel", " " .. table.concat(written, " ") .. " ")
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
    if string.find(raw, '"errorType"', 1, true) then -- already FirecREST-shaped (local reply mapper)
      local text = string_member(raw, "message")
      if status == "401" then -- jwt_authn's reasons, in FirecREST v2's words
        local words = (md and md["token"] == "1") and "Access token is invalid." or "Not authenticated"
        if text == "Jwt is expired" then words = "Access token expired" end
        body:setBytes(error_body(words, nil))
      elseif status == "400" and text then -- the transcoder's
        body:setBytes(error_body(caller_terms(text, md and md["camel"]), nil))
      end
      return
    elseif string.sub(raw, 1, 1) == "{" then -- google.rpc.Status, as the transcoder writes it
      message = string_member(raw, "message") or message
      reason = string_member(raw, "reason") or reason
      local field = string_member(raw, "field")
      if field then metadata = { field = field } end
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
  body:setBytes(error_body(message, user))
end
