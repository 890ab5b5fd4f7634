-- ARGV: aid, iid
local ix, e = offered_to(iid, aid)
if not ix then return e end
accept_offer(iid, ix, aid)
return ok_ix(iid, true)
