/**
 * Warnings for secrets every user of the host can read: the cluster key (anyone holding it can join
 * the mesh and rewrite every binding), the API token (full write access to the API), the peer TLS
 * key, and a config file that holds a secret inline. The agent starts anyway: refusing would turn a
 * package's default 0644 into an outage, and a group-readable file (0640 with the service's group,
 * as Debian ships secrets) is fine. Only "others" bits are reported, as ssh and PostgreSQL do for
 * their keys.
 */
export interface SecretFile {
  /** The setting that names the file (or "the config file"). */
  setting: string;
  path: string;
  /** For a config file: the secrets written in it inline; it counts only when there is one. */
  holds?: string[];
}

/** One line per file whose mode lets every user read or write it; `mode` returns undefined when it cannot tell. */
export function secretFilesOpenToOthers(files: readonly SecretFile[], mode: (path: string) => number | undefined): string[] {
  const out: string[] = [];
  for (const f of files) {
    if (f.holds !== undefined && f.holds.length === 0) continue;
    const m = mode(f.path);
    if (m === undefined || (m & 0o006) === 0) continue;
    const octal = (m & 0o777).toString(8).padStart(4, "0");
    const what = f.holds === undefined ? f.setting : `${f.setting} (it holds ${f.holds.join(" and ")})`;
    out.push(`${what}: ${f.path} can be ${(m & 0o002) !== 0 ? "written" : "read"} by every user on this host (mode ${octal}); chmod 600 it, or 640 with the service's group`);
  }
  return out;
}
