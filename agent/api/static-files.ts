/**
 * Serves the built web UI (web/dist) as static files: index.html for `/`, the right content types,
 * long-lived caching for Vite's content-hashed assets, a strict Content-Security-Policy, and
 * nothing outside the folder. Files are read per request (the folder is small; no build at run time).
 */
import { readFile, stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { extname, resolve, sep } from "node:path";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
  ".map": "application/json",
};

/**
 * Only our own scripts, styles and API. 'self' in connect-src covers ws:// to the same host and port
 * (CSP Level 3 §6.7.2.9). No inline script or style, so injected markup could not run even if it
 * got into the DOM; the UI itself renders SIP data as text only.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

export interface StaticFiles {
  /** Answers a GET or HEAD for `pathname` from the folder (404 when there is no such file). */
  serve(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void>;
}

export function createStaticFiles(deps: { root: string }): StaticFiles {
  const root = resolve(deps.root);

  /** The file for a URL path, or null when it would leave the folder or is malformed. */
  function fileFor(pathname: string): string | null {
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      return null;
    }
    if (decoded.includes("\0") || decoded.includes("\\")) return null;
    const rel = decoded === "/" ? "index.html" : decoded.replace(/^\/+/, "");
    const file = resolve(root, rel);
    return file.startsWith(root + sep) ? file : null;
  }

  const notFound = (res: ServerResponse, why: string) => {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...SECURITY_HEADERS }).end(why);
  };

  return {
    async serve(req, res, pathname) {
      const file = fileFor(pathname);
      if (file === null) return notFound(res, "not found\n");
      const info = await stat(file).catch(() => null);
      if (!info?.isFile()) {
        const built = await stat(resolve(root, "index.html")).catch(() => null);
        return notFound(res, built ? "not found\n" : "the web UI is not built: run `npm run build` in the locmesh folder\n");
      }
      const body = await readFile(file);
      // Vite names everything under assets/ by content hash, so a given URL never changes content.
      const hashed = file.startsWith(resolve(root, "assets") + sep);
      res.writeHead(200, {
        "content-type": CONTENT_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream",
        "content-length": body.length,
        "cache-control": hashed ? "public, max-age=31536000, immutable" : "no-cache",
        ...SECURITY_HEADERS,
      });
      res.end(req.method === "HEAD" ? undefined : body);
    },
  };
}
