-- ARGV: aid, iid
local ix, e = offered_to(iid, aid)
if not ix then return e end
-- A call from a telephony system is taken by answering the phone (its `answered` event): accepting
-- on the desktop would leave the phone ringing and the call unanswered.
if ix.ch == 'voice' and string.find(ix.attrs or '', '"cti.system"', 1, true) then
  return err('PRECONDITION', 'interaction_id: "' .. iid .. '" is a phone call: answer it on your phone')
end
accept_offer(iid, ix, aid)
return ok_ix(iid, true)
