-- A claim on an AuthCode while one worker sends it to WeCom. The claim is committed *before* the
-- exchange call, so no transaction stays open across an HTTP call, and any other worker (a
-- duplicate delivery, a redelivery after a lost commit, the expiry sweep) leaves a claimed code
-- alone until `claimed_until` has passed. `claim_id` stays on the row after the exchange, so
-- the claimant recognises its own committed result when a commit was acknowledged too late.
alter table auth_codes
    add column claim_id      uuid,
    add column claimed_until timestamptz;

-- A code can also be marked exchanged over an earlier `failed` (a claimant that kept the
-- permanent code wins over another's 40078, or over the expiry sweep): keep what was superseded.
alter table auth_codes
    add column superseded_failure text;
