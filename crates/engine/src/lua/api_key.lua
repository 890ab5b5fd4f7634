-- ARGV: op, id, record, details
-- op: 'put' stores a new key's record (JSON, hash only); 'revoke' removes one and returns its
-- record. details: what the audit trail shows of the key (JSON; never the secret or its hash).
if op == 'put' then
  if redis.call('HSETNX', K.api_keys(), id, record) == 0 then
    return err('EXISTS', 'id: key "' .. id .. '" already exists')
  end
  emit(EV.api_key_created, '', '', '', cjson.decode(details))
  return ok()
end
local stored = redis.call('HGET', K.api_keys(), id)
if not stored then return err('NOT_FOUND', 'id: no runtime key "' .. id .. '"') end
redis.call('HDEL', K.api_keys(), id)
local r = cjson.decode(stored)
emit(EV.api_key_revoked, '', '', '', { id = id, name = r.name, role = r.role })
return ok(stored)
