/**
 * mesh.tls's files checked together (agent/mesh/tls-files.ts) with certificates the openssl CLI
 * makes: what a renewal gone wrong looks like is named, file and reason, before any handshake.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { TlsFilesError, readTlsFiles } from "../../agent/mesh/tls-files.js";
import { makeTempDirs } from "../support/fixtures.js";
import { makeTestPki } from "../support/test-pki.js";

const tmp = makeTempDirs("locmesh-tls-files-");
afterEach(() => tmp.cleanup());

describe("readTlsFiles", () => {
  it("reads a matching certificate and key, the CA, and the certificate's end date", () => {
    const pki = makeTestPki(join(tmp.make(), "pki"));
    const m = readTlsFiles(pki);
    expect(m.validTo).toMatch(/^[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d \d{4} GMT$/);
    expect(m.ca?.toString()).toContain("BEGIN CERTIFICATE");
    expect(readTlsFiles({ cert: pki.cert, key: pki.key }).ca).toBeUndefined();
  });

  it("names the file and the reason: missing, not PEM, a key of another certificate, a CA that is not one", () => {
    const dir = tmp.make();
    const a = makeTestPki(join(dir, "a"));
    const b = makeTestPki(join(dir, "b"));
    const junk = join(dir, "junk.pem");
    writeFileSync(junk, "not a certificate\n");
    const problem = (f: { cert: string; key: string; ca?: string }) => {
      try {
        readTlsFiles(f);
      } catch (err) {
        expect(err).toBeInstanceOf(TlsFilesError);
        return (err as Error).message;
      }
      throw new Error("expected a TlsFilesError");
    };
    expect(problem({ cert: join(dir, "gone.crt"), key: a.key })).toMatch(/^mesh\.tls\.cert: cannot read .*gone\.crt: ENOENT/);
    expect(problem({ cert: junk, key: a.key })).toMatch(/^mesh\.tls\.cert: .*junk\.pem is not a PEM certificate/);
    expect(problem({ cert: a.cert, key: b.key })).toMatch(/^mesh\.tls\.key: .*b\/node\.key is not the key of .*a\/node\.crt/);
    expect(problem({ cert: a.cert, key: a.key, ca: junk })).toMatch(/^mesh\.tls\.ca: .*junk\.pem is not a PEM certificate/);
  });
});
