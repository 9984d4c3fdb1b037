/** The shapes of node and replica ids, in one place for the schemas, the fast checks and the config. */
export const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
/** `node~epoch`: a node id and the hex epoch of the journal that made the change. */
export const REPLICA_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}~[0-9a-f]{8,32}$/;
