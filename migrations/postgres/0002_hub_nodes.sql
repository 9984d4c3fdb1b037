-- Which hub process holds each hub nodeId (hub/node-claim.ts). Two hubs started with the same
-- nodeId on one database would share a replica id and overwrite each other's rows in hub_agents
-- (the cluster view, and which agents each hub reports as down), so a hub claims its nodeId at
-- start, refreshes the claim every mesh.statusIntervalMs and gives it up when it stops.
-- Forward-only: never edit this file after it has landed; add 0003_... instead.
CREATE TABLE hub_nodes (
  node_id    text PRIMARY KEY,
  -- Random per hub process: a restart is a new instance.
  instance   text NOT NULL,
  -- Host, pid and addresses of the holder, for the error the other process shows.
  holder     text NOT NULL,
  -- A process restarted on the same host sees whether the holder still runs (a crash, then a restart).
  host       text NOT NULL,
  pid        integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  seen_at    timestamptz NOT NULL DEFAULT now()
);
