/**
 * The peer port's TLS files (`mesh.tls`: PEM certificate, key, and the CA peers are checked
 * against), read and checked together: a key that does not match its certificate, or a file that is
 * not PEM, is found here, naming the file, rather than at the next peer's handshake. The mesh reads
 * them at its start, whether or not its peer port opens (mesh.ts), and a SIGHUP reads them again (a
 * renewed certificate at the same path), keeping the running ones when they fail.
 */
import { readFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { createSecureContext } from "node:tls";

export interface TlsFiles {
  cert: string;
  key: string;
  ca?: string | null;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  /** The certificate's notAfter, as OpenSSL prints it (for the log). */
  validTo: string;
}

/** mesh.tls's files cannot be used; says which and why. */
export class TlsFilesError extends Error {
  override readonly name = "TlsFilesError";
}

export function readTlsFiles(files: TlsFiles): TlsMaterial {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new TlsFilesError(`mesh.tls.${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const cert = read("cert", files.cert);
  const key = read("key", files.key);
  const ca = files.ca ? read("ca", files.ca) : undefined;
  let validTo: string;
  try {
    validTo = new X509Certificate(cert).validTo;
  } catch (err) {
    throw new TlsFilesError(`mesh.tls.cert: ${files.cert} is not a PEM certificate (${(err as Error).message})`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsFilesError(`mesh.tls.key: ${files.key} is not the key of ${files.cert}, or not a PEM private key (${(err as Error).message})`);
  }
  if (ca) {
    try {
      createSecureContext({ ca });
      new X509Certificate(ca);
    } catch (err) {
      throw new TlsFilesError(`mesh.tls.ca: ${files.ca} is not a PEM certificate (${(err as Error).message})`);
    }
  }
  return { cert, key, ca, validTo };
}
