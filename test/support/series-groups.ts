/** The series only some kinds of node export (README, "Operations"), as the tests expect them. */

/** Only on agents: the changes they make and the journal they keep them in. */
export const AGENT_ONLY_SERIES = ["locmesh_changes_committed_total", "locmesh_changes_refused_total", "locmesh_journal_behind"];
/** Only on agents attached to a Kamailio (a `kamailio` section). */
export const KAMAILIO_ONLY_SERIES = [
  "locmesh_kamailio_event_pauses_total", "locmesh_kamailio_events_queued", "locmesh_kamailio_events_total", "locmesh_kamailio_learned_total",
  "locmesh_kamailio_repairs_total", "locmesh_kamailio_restarts_total", "locmesh_kamailio_up", "locmesh_kamailio_write_failures_total",
  "locmesh_kamailio_writes_total", "locmesh_pending_kamailio_writes",
];
/** Only on hubs. */
export const HUB_ONLY_SERIES = ["locmesh_hub_postgres_up"];
