#!/usr/bin/env node
// The `locmesh` command. The TypeScript sources are compiled to dist/ by `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const main = fileURLToPath(new URL("../dist/agent/main.js", import.meta.url));
if (!existsSync(main)) {
  process.stderr.write("locmesh is not built yet: run `npm ci && npm run build` in the locmesh folder.\n");
  process.exit(1);
}
await import(main);
