/**
 * Binding a daemon's listening port, with an error that says what to do when it cannot. A
 * WebSocketServer built on the HTTP server re-emits the server's errors on itself, where nobody
 * listened: a port in use used to end the process with a bare stack trace.
 */
import type { Server } from "node:http";
import type { WebSocketServer } from "ws";

export class ListenError extends Error {
  override readonly name = "ListenError";
  constructor(
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Listens on host:port. `what` names the port for the operator, `setting` the config key that
 * moves it (e.g. "mesh.listen.port").
 */
export async function listenOn(
  server: Server,
  wss: WebSocketServer,
  where: { host: string; port: number },
  what: string,
  setting: string,
  onLaterError: (err: Error) => void,
): Promise<void> {
  // Before listening, the server's errors reject the promise below; after, they go to
  // `onLaterError`. The WebSocketServer's copy of them must not crash the process either way.
  let listening = false;
  wss.on("error", (err) => {
    if (listening) onLaterError(err);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(listenFailure(err, where, what, setting));
    server.once("error", onError);
    server.listen(where.port, where.host, () => {
      server.off("error", onError);
      listening = true;
      resolve();
    });
  });
}

/**
 * Why `where` could not be listened on, saying what to do: the agent's start and `locmesh check`
 * (check/listen-check.ts) word it the same way.
 */
export function listenFailure(err: NodeJS.ErrnoException, where: { host: string; port: number }, what: string, setting: string): ListenError {
  const at = `${where.host}:${where.port}`;
  if (err.code === "EADDRINUSE") {
    return new ListenError(err.code, `the ${what} port ${at} is already in use (another locmesh, or another program, holds it): stop that, or set ${setting} to a free port`, { cause: err });
  }
  if (err.code === "EADDRNOTAVAIL") {
    return new ListenError(err.code, `cannot listen for the ${what} on ${at}: no interface of this host has that address; set ${setting.replace(/port$/, "host")} to one of its addresses`, { cause: err });
  }
  if (err.code === "EACCES") {
    return new ListenError(err.code, `not allowed to listen for the ${what} on ${at} (ports below 1024 need privileges): set ${setting} to a port above 1023`, { cause: err });
  }
  return new ListenError(err.code ?? "EIO", `cannot listen for the ${what} on ${at}: ${err.message}`, { cause: err });
}
