/**
 * Writes a file in one step for whoever reads it: the text goes into a new file beside it, which
 * then takes its place (rename), so a reader sees the old file or the new one, never an empty or
 * half-written one. The new file keeps the old one's mode and owner (a generated include holds a
 * token: a shell's `> file.new && mv` would leave it readable by everyone under the usual umask).
 * A symbolic link at `path` is replaced by the file itself.
 */
import { chmodSync, chownSync, closeSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** The file cannot be replaced as asked (a directory the user may not write into); says what to do. */
export class ReplaceFileError extends Error {
  override readonly name = "ReplaceFileError";
}

export interface ReplacedFile {
  /** The mode it has now (permission bits). */
  mode: number;
  /** It kept the old file's owner and group; false when it could not (not root): it belongs to this user. */
  ownerKept: boolean;
  /** There was no file before: it got `newMode`. */
  created: boolean;
}

export function replaceFile(path: string, text: string, opts: { newMode: number }): ReplacedFile {
  let old: { mode: number; uid: number; gid: number } | null = null;
  try {
    const st = statSync(path);
    old = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const mode = old?.mode ?? opts.newMode;
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.new`);
  let fd: number;
  try {
    fd = openSync(tmp, "wx", 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") {
      throw new ReplaceFileError(`cannot write ${path}: the new file goes beside it, and this user may not create files in ${dirname(path)}; run as a user who may (root), or print it and install it by hand`);
    }
    throw err;
  }
  try {
    let ownerKept = true;
    try {
      writeSync(fd, text);
      fsyncSync(fd);
      if (old !== null) {
        try {
          chownSync(tmp, old.uid, old.gid);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "EPERM") throw err;
          ownerKept = false;
        }
      }
      // After the chown, which may clear set-id bits; the umask does not apply to chmod.
      chmodSync(tmp, mode);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    return { mode, ownerKept: old === null || ownerKept, created: old === null };
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed or never made
    }
    throw err;
  }
}
