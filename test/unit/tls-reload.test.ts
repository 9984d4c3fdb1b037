/**
 * SIGHUP's mesh.tls step (agent/mesh/tls-reload.ts): what the error says is kept must be true of
 * the node, which may have no peer port open (an agent in hub mode with no mesh.peers, its mesh.tls
 * there for the CA of its wss:// hubs).
 */
import { describe, expect, it } from "vitest";
import { reloadTls } from "../../agent/mesh/tls-reload.js";
import { TlsFilesError } from "../../agent/mesh/tls-files.js";
import { capturedLog } from "../support/captured-log.js";

const FILES = { cert: "/etc/locmesh/tls/node.crt", key: "/etc/locmesh/tls/node.key", ca: "/etc/locmesh/tls/ca.crt" };
const REFUSED = "mesh.tls.ca: /etc/locmesh/tls/ca.crt is not a PEM certificate (error:0480006C:PEM routines::no start line)";

function refusedOn(port: number, files: { cert: string; key: string; ca: string | null } = FILES): { ok: boolean; msg: string; err: unknown } {
  const { log, lines } = capturedLog();
  const mesh = {
    port: () => port,
    setTls: (): string => {
      throw new TlsFilesError(REFUSED);
    },
  };
  const ok = reloadTls(mesh, files, log);
  expect(lines).toHaveLength(1);
  expect(lines[0]!.level).toBe(50);
  return { ok, msg: lines[0]!.msg, err: (lines[0] as unknown as { err: unknown }).err };
}

describe("reloadTls", () => {
  it("with the peer port open, says it keeps serving the running certificate and dials keep the running CA", () => {
    const r = refusedOn(7100);
    expect(r.ok).toBe(false);
    expect(r.err).toBe(REFUSED);
    expect(r.msg).toBe(
      "SIGHUP: mesh.tls could not be read again; the peer port keeps serving the running certificate, and dials keep checking peers and hubs " +
        "against the running CA. Fix the files and send SIGHUP again",
    );
    expect(refusedOn(7100, { ...FILES, ca: null }).msg).toBe(
      "SIGHUP: mesh.tls could not be read again; the peer port keeps serving the running certificate. Fix the files and send SIGHUP again",
    );
  });

  it("with no peer port open, does not claim one serves anything: the running CA stays for the dials", () => {
    const r = refusedOn(0);
    expect(r.ok).toBe(false);
    expect(r.err).toBe(REFUSED);
    expect(r.msg).not.toMatch(/peer port keeps serving/);
    expect(r.msg).toBe(
      "SIGHUP: mesh.tls could not be read again; the running files stay: dials keep checking peers and hubs against the running CA " +
        "(this node has no peer port open: nothing serves the certificate). Fix the files and send SIGHUP again",
    );
  });

  it("logs the files read again with the certificate's end date", () => {
    const { log, lines } = capturedLog();
    expect(reloadTls({ port: () => 0, setTls: () => "certificate valid until Jan  1 00:00:00 2030 GMT" }, FILES, log)).toBe(true);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([[30, "SIGHUP: mesh.tls read again; new handshakes use it (sessions up stay)"]]);
  });
});
