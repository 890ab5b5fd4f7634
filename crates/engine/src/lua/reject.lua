-- ARGV: aid, iid, reason
local ix, e = offered_to(iid, aid)
if not ix then return e end
reject_offer(iid, ix, aid, reason)
return ok()
