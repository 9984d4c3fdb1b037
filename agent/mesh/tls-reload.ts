/**
 * SIGHUP's step for mesh.tls, on agents and hubs alike: the files read again and served from the
 * next handshake, logged with the certificate's end date; files that cannot be used are logged as
 * an error naming the file, and the running ones stay (the port does not go down over a bad renewal).
 */
import type { Logger } from "../ops/logger.js";
import type { MeshReload } from "./mesh-reload.js";
import type { TlsFiles } from "./tls-files.js";

export function reloadTls(mesh: Pick<MeshReload, "setTls"> & { port(): number }, files: TlsFiles, log: Logger): boolean {
  try {
    const outcome = mesh.setTls(files);
    log.info({ cert: files.cert, outcome }, "SIGHUP: mesh.tls read again; new handshakes use it (sessions up stay)");
    return true;
  } catch (err) {
    log.error({ err: (err as Error).message }, `SIGHUP: mesh.tls could not be read again; ${keptBecause(mesh.port() !== 0, Boolean(files.ca))}. Fix the files and send SIGHUP again`);
    return false;
  }
}

/**
 * What goes on with the running files, said as it is on this node: an agent in hub mode with no
 * mesh.peers has no peer port open (peer-listener.ts), and its mesh.tls is there for the CA alone.
 */
function keptBecause(portOpen: boolean, withCa: boolean): string {
  const dials = withCa ? "dials keep checking peers and hubs against the running CA" : "";
  if (portOpen) return `the peer port keeps serving the running certificate${dials ? `, and ${dials}` : ""}`;
  return `the running files stay${dials ? `: ${dials}` : ""} (this node has no peer port open: nothing serves the certificate)`;
}
