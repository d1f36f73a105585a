-- sockkit.lua — Wireshark/tshark dissector for sockkit's protocols.
--
--   * SNW ("sockkit_snw"): stop-and-wait over UDP (docs/snw.md). 22-byte
--     header "SW" | ver | type | session u32 | seq u64 | len u16 | CRC-32 u32,
--     then the payload (LEN:<bytes>, file bytes, ACK, FIN, CLOSE, WAIT, channel tag).
--     The CRC-32 (IEEE) over the header with a zeroed CRC field plus payload
--     is verified when the whole datagram was captured.
--   * File-service control ("sockkit_fs", protocol/file_service.ts): over TCP,
--     frames of a u32 big-endian length + one UTF-8 line (PUT, GET, STAT,
--     READY, FOUND, DONE, OK, ERROR, WAIT). With the tcp transport the file
--     bytes share the control connection (u64 size + bytes after FOUND or
--     READY); they are shown as "file data" without reassembly.
--
-- Both are heuristic (sockkit picks its ports at run time):
--   tshark -X lua_script:tools/wireshark/sockkit.lua -r capture.pcapng
-- Install for Wireshark:
--   mkdir -p ~/.local/lib/wireshark/plugins && cp tools/wireshark/sockkit.lua ~/.local/lib/wireshark/plugins/
--
-- Works with the Lua 5.2 of Wireshark 3.x/4.0-4.4 (bit32) and with Lua 5.3+.

local band, bxor, rshift
if bit32 then
  band, bxor, rshift = bit32.band, bit32.bxor, bit32.rshift
else
  band = load("return function(a, b) return a & b end")()
  bxor = load("return function(a, b) return a ~ b end")()
  rshift = load("return function(a, n) return (a & 0xffffffff) >> n end")()
end

local CRC_TABLE = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if band(c, 1) == 1 then
      c = bxor(0xEDB88320, rshift(c, 1))
    else
      c = rshift(c, 1)
    end
  end
  CRC_TABLE[i] = c
end

-- CRC-32 of a ByteArray, the bytes at [18, 22) counted as zero.
local function snw_crc32(bytes)
  local crc = 0xFFFFFFFF
  for i = 0, bytes:len() - 1 do
    local b = bytes:get_index(i)
    if i >= 18 and i < 22 then b = 0 end
    crc = bxor(CRC_TABLE[band(bxor(crc, b), 0xFF)], rshift(crc, 8))
  end
  return band(bxor(crc, 0xFFFFFFFF), 0xFFFFFFFF)
end

---------------------------------------------------------------------------
-- SNW
---------------------------------------------------------------------------

local SNW_HEADER = 22
local snw_types = { [1] = "OPEN", [2] = "LEN", [3] = "DATA", [4] = "ACK", [5] = "FIN", [6] = "CLOSE", [7] = "WAIT" }

local snw = Proto("sockkit_snw", "sockkit SNW (stop-and-wait over UDP)")
local sf = {
  magic = ProtoField.string("sockkit_snw.magic", "Magic"),
  version = ProtoField.uint8("sockkit_snw.version", "Version"),
  type = ProtoField.uint8("sockkit_snw.type", "Type", base.DEC, snw_types),
  session = ProtoField.uint32("sockkit_snw.session", "Session", base.HEX),
  seq = ProtoField.uint64("sockkit_snw.seq", "Sequence number"),
  len = ProtoField.uint16("sockkit_snw.len", "Payload length"),
  crc = ProtoField.uint32("sockkit_snw.crc", "CRC-32", base.HEX),
  crc_status = ProtoField.string("sockkit_snw.crc.status", "CRC-32 status"),
  token = ProtoField.string("sockkit_snw.token", "Token"),
  size = ProtoField.uint64("sockkit_snw.transfer_size", "Transfer size (LEN)"),
  tag = ProtoField.string("sockkit_snw.tag", "Channel tag"),
  data = ProtoField.bytes("sockkit_snw.data", "File data"),
}
snw.fields = { sf.magic, sf.version, sf.type, sf.session, sf.seq, sf.len, sf.crc,
  sf.crc_status, sf.token, sf.size, sf.tag, sf.data }
local snw_bad_crc = ProtoExpert.new("sockkit_snw.crc.bad", "SNW CRC-32 mismatch",
  expert.group.CHECKSUM, expert.severity.ERROR)
snw.experts = { snw_bad_crc }

local function snw_looks_valid(tvb)
  local reported = tvb:reported_length_remaining()
  if reported < SNW_HEADER or tvb:len() < SNW_HEADER then return false end
  if tvb(0, 2):string() ~= "SW" or tvb(2, 1):uint() ~= 1 then return false end
  local t = tvb(3, 1):uint()
  if t < 1 or t > 6 then return false end
  return SNW_HEADER + tvb(16, 2):uint() == reported
end

function snw.dissector(tvb, pinfo, tree)
  if not snw_looks_valid(tvb) then return 0 end
  local t = tvb(3, 1):uint()
  local tname = snw_types[t]
  local plen = tvb(16, 2):uint()
  local reported = tvb:reported_length_remaining()
  pinfo.cols.protocol = "SNW"
  local st = tree:add(snw, tvb(), "sockkit SNW, " .. tname)
  st:add(sf.magic, tvb(0, 2))
  st:add(sf.version, tvb(2, 1))
  st:add(sf.type, tvb(3, 1))
  st:add(sf.session, tvb(4, 4))
  st:add(sf.seq, tvb(8, 8))
  st:add(sf.len, tvb(16, 2))
  local crc_item = st:add(sf.crc, tvb(18, 4))
  local status
  if tvb:len() < reported then
    status = "unverified (not fully captured)"
  else
    local actual = snw_crc32(tvb(0, reported):bytes())
    if actual == tvb(18, 4):uint() then
      status = "good"
    else
      status = string.format("bad (computed 0x%08x)", actual)
      crc_item:add_proto_expert_info(snw_bad_crc)
    end
  end
  st:add(sf.crc_status, status)
  local seq = tvb(8, 8):uint64()
  local info = string.format("%s seq=%s session=0x%08x len=%d", tname, tostring(seq),
    tvb(4, 4):uint(), plen)
  local captured = math.min(plen, tvb:len() - SNW_HEADER)
  if plen > 0 and t ~= 3 and captured > 0 then
    local text = tvb(SNW_HEADER, captured):string()
    if t == 1 then
      st:add(sf.tag, tvb(SNW_HEADER, captured))
      info = info .. " tag=" .. text
    else
      local token = text:match("^(%u+)")
      if token then st:add(sf.token, tvb(SNW_HEADER, #token), token) end
      if t == 2 then
        local n = text:match("^LEN:(%d+)")
        if n then
          st:add(sf.size, tvb(SNW_HEADER, captured), UInt64(tonumber(n)))
        end
      end
      info = info .. " " .. text
    end
  elseif t == 3 and plen > 0 then
    if captured > 0 then st:add(sf.data, tvb(SNW_HEADER, captured)) end
  end
  if status ~= "good" then info = info .. " [CRC " .. status .. "]" end
  pinfo.cols.info = info
  return reported
end

snw:register_heuristic("udp", function(tvb, pinfo, tree)
  if not snw_looks_valid(tvb) then return false end
  snw.dissector(tvb, pinfo, tree)
  return true
end)

---------------------------------------------------------------------------
-- File-service control (TCP)
---------------------------------------------------------------------------

local MAX_PAYLOAD = 16384
local VERBS = { PUT = true, GET = true, STAT = true, READY = true, FOUND = true,
  DONE = true, OK = true, ERROR = true, WAIT = true }

local fs = Proto("sockkit_fs", "sockkit file-service control")
local ff = {
  length = ProtoField.uint32("sockkit_fs.length", "Frame length"),
  line = ProtoField.string("sockkit_fs.line", "Message"),
  verb = ProtoField.string("sockkit_fs.verb", "Command"),
  tag = ProtoField.string("sockkit_fs.tag", "Data channel tag"),
  size = ProtoField.uint64("sockkit_fs.size", "File size"),
  name = ProtoField.string("sockkit_fs.name", "File name"),
  sha256 = ProtoField.string("sockkit_fs.sha256", "SHA-256"),
  code = ProtoField.string("sockkit_fs.code", "Error code"),
  text = ProtoField.string("sockkit_fs.text", "Text"),
  transfer_size = ProtoField.uint64("sockkit_fs.transfer_size", "TCP transfer size"),
  data_len = ProtoField.uint32("sockkit_fs.data_len", "File data in this segment"),
  data_left = ProtoField.uint64("sockkit_fs.data_left", "File data still to come"),
}
fs.fields = { ff.length, ff.line, ff.verb, ff.tag, ff.size, ff.name, ff.sha256, ff.code,
  ff.text, ff.transfer_size, ff.data_len, ff.data_left }

-- Per-direction stream state, and a copy per frame for re-dissection.
local streams = {}
local frame_states = {}

function fs.init()
  streams = {}
  frame_states = {}
end

local function dir_key(pinfo, reverse)
  local a = tostring(pinfo.src) .. ":" .. tostring(pinfo.src_port)
  local b = tostring(pinfo.dst) .. ":" .. tostring(pinfo.dst_port)
  if reverse then return b .. ">" .. a end
  return a .. ">" .. b
end

local function copy(s)
  return { mode = s.mode, expect = s.expect, left = s.left, put_size = s.put_size }
end

local function state_of(key)
  local s = streams[key]
  if not s then
    s = { mode = "ctl", expect = nil, left = 0, put_size = nil }
    streams[key] = s
  end
  return s
end

local function frame_header_ok(tvb, offset)
  if tvb:len() - offset < 5 then return false end
  local n = tvb(offset, 4):uint()
  if n < 1 or n > MAX_PAYLOAD then return false end
  local avail = math.min(n, tvb:len() - offset - 4, 6)
  local head = tvb(offset + 4, avail):string()
  local verb = head:match("^(%u+)")
  return verb ~= nil and (VERBS[verb] == true or #verb == avail)
end

-- Adds one control message; returns the parsed verb and fields.
local function add_message(tvb, offset, n, tree, pinfo)
  local captured = math.min(n, tvb:len() - offset - 4)
  local mt = tree:add(fs, tvb(offset, 4 + math.max(captured, 0)), "sockkit control message")
  mt:add(ff.length, tvb(offset, 4))
  if captured <= 0 then return nil end
  local range = tvb(offset + 4, captured)
  local line = range:string()
  if captured < n then line = line .. "…" end
  mt:add(ff.line, range, line)
  local verb, rest = line:match("^(%u+) ?(.*)$")
  if not verb then return nil end
  mt:add(ff.verb, range, verb)
  mt:set_text("sockkit control: " .. line)
  local msg = { verb = verb }
  if verb == "PUT" then
    local tag, size, name = rest:match("^(%S+) (%d+) (.*)$")
    if tag then
      mt:add(ff.tag, range, tag); mt:add(ff.size, range, UInt64(tonumber(size))); mt:add(ff.name, range, name)
      msg.size = tonumber(size)
    end
  elseif verb == "GET" then
    local tag, name = rest:match("^(%S+) (.*)$")
    if tag then mt:add(ff.tag, range, tag); mt:add(ff.name, range, name) end
  elseif verb == "STAT" then
    mt:add(ff.name, range, rest)
  elseif verb == "FOUND" then
    local size, sha = rest:match("^(%d+) (%x+)")
    if size then
      mt:add(ff.size, range, UInt64(tonumber(size))); mt:add(ff.sha256, range, sha)
      msg.size = tonumber(size)
    end
  elseif verb == "DONE" then
    mt:add(ff.sha256, range, rest)
  elseif verb == "OK" then
    mt:add(ff.text, range, rest)
  elseif verb == "ERROR" then
    local code, text = rest:match("^(%S+) (.*)$")
    if code then mt:add(ff.code, range, code); mt:add(ff.text, range, text) end
  end
  return msg, line
end

function fs.dissector(tvb, pinfo, tree)
  local key = dir_key(pinfo, false)
  local fkey = tostring(pinfo.number) .. "|" .. key
  local s
  if frame_states[fkey] then
    s = copy(frame_states[fkey])
  else
    s = state_of(key)
    frame_states[fkey] = copy(s)
  end
  local reverse = state_of(dir_key(pinfo, true))
  local reported = tvb:reported_length_remaining()
  local offset = 0
  local infos = {}
  pinfo.cols.protocol = "SOCKKIT"
  while offset < reported do
    if s.mode == "data" then
      local take = math.min(s.left, reported - offset)
      s.left = s.left - take
      local dt = tree:add(fs, tvb(offset, math.min(take, math.max(tvb:len() - offset, 0))),
        "sockkit file data (tcp transport)")
      dt:add(ff.data_len, take)
      dt:add(ff.data_left, UInt64(s.left))
      table.insert(infos, string.format("[file data %d bytes, %d left]", take, s.left))
      offset = offset + take
      if s.left == 0 then s.mode = "ctl" end
    else
      local avail = tvb:len() - offset
      if s.mode == "maybe-data" then
        if avail < 8 then
          if tvb:len() == reported then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
          end
          return reported
        end
        local size = tvb(offset, 8):uint64()
        if tostring(size) == tostring(s.expect) then
          local dt = tree:add(fs, tvb(offset, 8), "sockkit TCP transfer header")
          dt:add(ff.transfer_size, tvb(offset, 8))
          table.insert(infos, "[transfer of " .. tostring(size) .. " bytes]")
          offset = offset + 8
          s.left = s.expect
          s.mode = s.left > 0 and "data" or "ctl"
          s.expect = nil
          goto continue
        end
        s.mode = "ctl" -- snw: the data travels over UDP
        s.expect = nil
      end
      if avail < 4 then
        if tvb:len() == reported then
          pinfo.desegment_offset = offset
          pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
        end
        break
      end
      local n = tvb(offset, 4):uint()
      if n < 1 or n > MAX_PAYLOAD then
        table.insert(infos, "[not a control frame]")
        break
      end
      if avail < 4 + n and tvb:len() == reported then
        pinfo.desegment_offset = offset
        pinfo.desegment_len = 4 + n - avail
        break
      end
      local msg, line = add_message(tvb, offset, n, tree, pinfo)
      table.insert(infos, line or "[truncated control frame]")
      if msg then
        if msg.verb == "PUT" then
          s.put_size = msg.size
        elseif msg.verb == "FOUND" and msg.size then
          s.mode = "maybe-data"
          s.expect = msg.size
        elseif msg.verb == "READY" and reverse.put_size then
          reverse.mode = "maybe-data"
          reverse.expect = reverse.put_size
        end
      end
      offset = offset + 4 + n
    end
    ::continue::
  end
  if #infos > 0 then pinfo.cols.info = table.concat(infos, " ") end
  return reported
end

fs:register_heuristic("tcp", function(tvb, pinfo, tree)
  if not frame_header_ok(tvb, 0) then return false end
  local n = tvb(0, 4):uint()
  local verb = tvb(4, math.min(n, tvb:len() - 4, 6)):string():match("^(%u+)")
  if verb ~= "PUT" and verb ~= "GET" and verb ~= "STAT" then return false end
  pinfo.conversation = fs
  fs.dissector(tvb, pinfo, tree)
  return true
end)
