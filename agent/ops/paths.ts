import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root, found from this file whether it runs from source or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "migrations"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("cannot find the locmesh package root (a folder with package.json and migrations/)");
}

/** This locmesh's version, from its package.json; "unknown" rather than failing every command. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}

export function migrationsDir(): string {
  return join(packageRoot(), "migrations");
}

/** Where `npm run build` puts the web UI (Vite's output for web/). */
export function webDistDir(): string {
  return join(packageRoot(), "web", "dist");
}
