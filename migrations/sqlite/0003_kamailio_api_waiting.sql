-- The local API's edits of this node's own bindings (location.publish, `locmesh location add/rm`,
-- the web UI) that could not be brought into this node's Kamailio when they were made: Kamailio
-- did not answer, was restarting, or the journal had not caught up yet. One row per binding, keyed
-- as agent/kamailio/install-plan.ts bindingKey. The agent tries them again once Kamailio answers
-- (agent/kamailio/api-edits-waiting.ts) and forgets each when it went in. Kept in the journal so
-- that an agent restarted in between still brings them in.
CREATE TABLE kamailio_api_waiting (
  key TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
