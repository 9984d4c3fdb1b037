/**
 * A throwaway certificate authority and one node certificate for 127.0.0.1, made with the openssl
 * CLI. A machine without openssl fails the test with the command that installs it: the TLS path
 * is a real component and is never skipped.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestPki {
  ca: string;
  cert: string;
  key: string;
}

const INSTALL_HINT = "openssl is not installed; the TLS tests need it: sudo apt-get install -y openssl";

function openssl(cwd: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT" ? INSTALL_HINT : `openssl ${args[0]} failed to run: ${r.error.message}`);
  }
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} exited with ${r.status}: ${r.stderr}`);
}

/** `san`: the node certificate's subjectAltName (default IP:127.0.0.1, what the tests dial). */
export function makeTestPki(dir: string, o: { san?: string } = {}): TestPki {
  mkdirSync(dir, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(dir, ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=locmesh test CA"]);
  openssl(dir, ["req", ...ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=127.0.0.1"]);
  // Clients check the peer URL's host against subjectAltName (RFC 6125 §6.4.4), not the CN.
  writeFileSync(
    join(dir, "node.ext"),
    `subjectAltName=${o.san ?? "IP:127.0.0.1"}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  openssl(dir, [
    "x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "node.crt", "-days", "2", "-extfile", "node.ext",
  ]);
  return { ca: join(dir, "ca.crt"), cert: join(dir, "node.crt"), key: join(dir, "node.key") };
}
