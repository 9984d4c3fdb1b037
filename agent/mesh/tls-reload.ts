/**
 * SIGHUP's step for mesh.tls, on agents and hubs alike: the files read again and served from the
 * next handshake, logged with the certificate's end date; files that cannot be used are logged as
 * an error naming the file, and the running ones stay (the port does not go down over a bad renewal).
 */
import type { Logger } from "../ops/logger.js";
import type { MeshReload } from "./mesh-reload.js";
import type { TlsFiles } from "./tls-files.js";

export function reloadTls(mesh: Pick<MeshReload, "setTls">, files: TlsFiles, log: Logger): boolean {
  try {
    const outcome = mesh.setTls(files);
    log.info({ cert: files.cert, outcome }, "SIGHUP: mesh.tls read again; new handshakes use it (sessions up stay)");
    return true;
  } catch (err) {
    log.error({ err: (err as Error).message }, "SIGHUP: mesh.tls could not be read again; the peer port keeps serving the running certificate. Fix the files and send SIGHUP again");
    return false;
  }
}
