/**
 * The operator commands that talk to a running agent over its local API: status, alias, location
 * and resync. Each prints tables (or raw JSON with --json); a failure prints one line to stderr
 * and sets process.exitCode, leaving the exit itself to the composition root.
 */
import { Command, InvalidArgumentError } from "commander";
import { ApiMethod, type ListResult, type PublishResult } from "../contract/api-protocol.js";
import type { ClusterStatus } from "../contract/cluster-status.js";
import type { KamailioAliasResult, KamailioBinding, KamailioListResult, KamailioLookupResult } from "../contract/kamailio-status.js";
import type { Alias, Location } from "../contract/records.js";
import { ConfigError, listenToUrl, loadApiSettings } from "../config/agent-config.js";
import { redactUrl } from "../ops/redact-url.js";
import { DEFAULT_API_URL, apiUrlFault } from "./api-url.js";
import { AgentUnreachableError, createApiClient, type ApiClient } from "./api-client.js";
import { ErrorCode, RpcError } from "../contract/errors.js";
import { formatStatus } from "./client-output.js";
import {
  bindingsOf, describeKamailioTable, formatAlias, formatAliasRemoved, formatAliasSet, formatAliases, formatKamailioAlias, formatBindings, formatKamailioContacts, formatKamailioTable, formatLocations,
} from "./listing-output.js";
import { FollowStopped, reloadFailure, runKamailioReload, runResync } from "./resync-progress.js";
import { cellText } from "./table.js";

export interface ClientIo {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Where Ctrl-C (SIGINT) comes from while `resync` follows a run; default: the process. */
  signals?: Pick<NodeJS.EventEmitter, "once" | "off">;
}

interface ClientOpts {
  url?: string;
  token?: string;
  config?: string;
  json?: boolean;
}

interface ResyncOpts extends ClientOpts {
  peer?: string;
  kamailio?: boolean;
}

interface ListOpts extends ClientOpts {
  search?: string;
  limit?: number;
  all?: boolean;
}

/** The API's largest page (listParams in the contract); --all pages with it to save round trips. */
const MAX_PAGE = 1000;
/**
 * What the --kamailio calls wait: kamailio.list may wait for a ul.dump (the agent allows it 30 s,
 * usrloc-rpc.ts) and its comparison; a lookup waits its turn at Kamailio's one FIFO process (behind
 * a reconcile's dump) and then kamailio.timeoutMs (5 s by default). The agent answers with Kamailio's
 * own failure in time: a client timeout shorter than that would blame the agent instead.
 */
const KAMAILIO_WAIT_MS = 45_000;

export function registerClientCommands(program: Command, io: ClientIo): void {
  const print = (text: string) => io.stdout.write(`${text}\n`);
  const printJson = (value: unknown) => print(JSON.stringify(value ?? null, null, 2));
  /** An answer as JSON with --json, else as `text` makes it. */
  const answer = <T>(opts: ClientOpts, value: T, text: (v: T) => string) => (opts.json ? printJson(value) : print(text(value)));

  /**
   * Wraps an action: checks the flags (`check`, before the API target is looked up), resolves the
   * API target, opens a client, reports failures as one line.
   */
  const run =
    <A extends unknown[]>(fn: (client: ApiClient, opts: ClientOpts, ...args: A) => Promise<void>, check?: (opts: ClientOpts) => void) =>
    async (...args: [...A, ClientOpts, Command]): Promise<void> => {
      const opts = args[args.length - 2] as ClientOpts;
      let client: ApiClient | undefined;
      try {
        check?.(opts);
        client = createApiClient(resolveTarget(opts, io.env));
        await fn(client, opts, ...(args.slice(0, -2) as A));
      } catch (err) {
        io.stderr.write(`locmesh: ${describeError(err)}\n`);
        process.exitCode = exitCodeOf(err);
      } finally {
        client?.close();
      }
    };

  withClientOptions(program.command("status").description("show this node, its peers and replication lag")).action(
    run(async (client, opts) => {
      const s = await client.call<ClusterStatus>(ApiMethod.ClusterStatus);
      if (opts.json) printJson(s);
      else print(formatStatus(s));
    }),
  );

  const alias = program.command("alias").description("manage call-forward aliases (replicated to every node)");
  // `add` replaces an existing alias's target, as it always has (scripts rely on it being
  // idempotent); --if-absent is the web UI's "Add": refused when the alias exists.
  withClientOptions(
    alias
      .command("add")
      .argument("<alias>", "alias URI, e.g. sip:bob@example.com")
      .argument("<target>", "where calls go")
      .option("--if-absent", "refuse if the alias exists (by default its target is replaced)"),
  ).description("create or change an alias").action(
    run(async (client, opts, name: string, target: string) => {
      const ifAbsent = (opts as ClientOpts & { ifAbsent?: boolean }).ifAbsent === true;
      // The agent answers with the normalized URIs; show those, since they are what is stored.
      const r = await client.call<(Partial<Alias> & { notes?: string[] }) | null>(ApiMethod.AliasSet, { alias: name, target, ...(ifAbsent ? { ifAbsent } : {}) });
      if (opts.json) printJson(r);
      else print(formatAliasSet(r, { alias: name, target }));
      // Set all the same: what Kamailio will make of it (agent/api/alias-notes.ts); --json has them in `notes`.
      if (!opts.json) for (const note of r?.notes ?? []) io.stderr.write(`locmesh: note: ${note}\n`);
    }),
  );
  withClientOptions(
    alias
      .command("rm")
      .argument("<alias>", "alias URI to remove")
      .option("--expect-target <uri>", "remove only while the alias forwards to this target (refused if it was changed)"),
  ).description("remove an alias").action(
    run(async (client, opts, name: string) => {
      const expectTarget = (opts as ClientOpts & { expectTarget?: string }).expectTarget;
      const r = await client.call<{ removed?: unknown } | null>(ApiMethod.AliasRemove, { alias: name, ...(expectTarget !== undefined ? { expectTarget } : {}) });
      if (opts.json) printJson(r);
      else print(formatAliasRemoved(r, name));
    }),
  );
  withClientOptions(
    alias
      .command("show")
      .argument("<alias>", "alias URI, e.g. sip:bob@example.com")
      .option("--kamailio", "also what this node's Kamailio itself holds for it (usrloc's aliases domain, or alias_db's table), compared with the journal"),
  ).description("show one alias's target")
    .addHelpText("after", "\nExits 1 for an alias the journal does not have; with --kamailio, for one neither the journal nor Kamailio has\n(absent), and 0 whatever else the comparison finds (in line, MISSING, DIFFERS, EXTRA: the state line says which).")
    .action(
      run(async (client, opts, name: string) => {
        if ((opts as { kamailio?: boolean }).kamailio) {
          const k = await client.call<KamailioAliasResult>(ApiMethod.KamailioAlias, { alias: name }, { timeoutMs: KAMAILIO_WAIT_MS });
          answer(opts, k, formatKamailioAlias);
          // An alias neither side has is the unknown alias of a plain `alias show` (exit 1). The other
          // states (in line, MISSING, DIFFERS, EXTRA) exit 0: the comparison was made, and the state
          // line (`agreement` with --json) says what it found.
          if (k.agreement === "absent") process.exitCode = EXIT.failed;
        } else {
          const r = await client.call<{ alias: string; target: string | null }>(ApiMethod.AliasLookup, { alias: name });
          answer(opts, r, () => formatAlias(r.alias, r.target));
          // An unknown alias is a failed lookup for scripts (exit 1), as `alias rm` of one is.
          if (r.target === null) process.exitCode = EXIT.failed;
        }
      }),
    );
  withListOptions(alias.command("ls")).description("list aliases").action(
    run(async (client, opts) => {
      const page = await listPages<Alias>(client, ApiMethod.AliasList, opts);
      if (opts.json) printJson(page);
      else print(formatAliases(page.items) + pageFooter(page, "aliases"));
    }),
  );

  const location = program.command("location").description("inspect, add and remove replicated SIP location bindings");
  withListOptions(location.command("ls"))
    .option("--kamailio", "list this node's Kamailio's whole location table (ul.dump) instead, each binding compared with the journal")
    .description("list bindings")
    .addHelpText("after", "\nWith --kamailio the JOURNAL column says whether the journal holds the binding as Kamailio does (present), not at\nall (missing) or with other routing fields (differs), and a last line sums up the whole table. A table above\nkamailio.reconcileMaxContacts contacts is not listed (its ul.dump would hold Kamailio's FIFO for seconds).")
    .action(
      run(async (client, opts) => {
        if ((opts as { kamailio?: boolean }).kamailio) {
          const page = (await listPages<KamailioBinding>(client, ApiMethod.KamailioList, opts, { timeoutMs: KAMAILIO_WAIT_MS })) as KamailioListResult;
          if (opts.json) printJson(page);
          else print(`${formatKamailioTable(page.items, agentNowSec(page), (opts as ListOpts).search ?? "")}${pageFooter(page, "bindings")}\n\n${describeKamailioTable(page.summary)}`);
          return;
        }
        const page = await listPages<Location>(client, ApiMethod.LocationList, opts);
        if (opts.json) printJson(page);
        else print(formatLocations(page.items, agentNowSec(page)) + pageFooter(page, "bindings"));
      }),
    );
  withClientOptions(
    location.command("show").argument("<aor>", "address of record, e.g. sip:alice@example.com")
      .option("--kamailio", "what this node's Kamailio itself holds for the AoR (ul.lookup), instead of the journal"),
  ).description("show every binding of one AoR").action(
    run(async (client, opts, aor: string) => {
      if ((opts as { kamailio?: boolean }).kamailio) {
        const k = await client.call<KamailioLookupResult>(ApiMethod.KamailioLookup, { aor }, { timeoutMs: KAMAILIO_WAIT_MS });
        if (opts.json) printJson(k);
        else print(formatKamailioContacts(k.aor, k.contacts, agentNowSec(k)));
        return;
      }
      const r = await client.call<{ aor?: string; nowSec?: number } | null>(ApiMethod.LocationLookup, { aor });
      if (opts.json) printJson(r);
      else print(formatBindings(typeof r?.aor === "string" ? r.aor : aor, bindingsOf(r), agentNowSec(r)));
    }),
  );

  withClientOptions(
    location.command("add").argument("<aor>", "address of record, e.g. sip:alice@example.com").argument("<contact>", "where it is reached, e.g. sip:alice@192.0.2.10:5060")
      .option("--expires <seconds>", "seconds from now until it expires (default: permanent, as kamctl ul add)", parsePositive)
      .option("--q <q>", "q value from 0 to 1 (default: none)", parseQ)
      .option("--path <path>", "Path header value, e.g. <sip:edge.example.net;lr>")
      .option("--received <uri>", "the source it is reached at behind NAT, e.g. sip:198.51.100.7:5060")
      .option("--socket <socket>", "this node's Kamailio socket to send from, e.g. udp:192.0.2.1:5060"),
  ).description("add or change a binding on every node (a static contact; replaces kamctl ul add, which the agent undoes)")
    .action(
      run(async (client, opts, aor: string, contact: string) => {
        const o = opts as ClientOpts & { expires?: number; q?: number; path?: string; received?: string; socket?: string };
        // Counted from the agent's clock, not this host's (the CLI may run elsewhere, its clock off).
        const expires = o.expires === undefined ? 0 : agentNowSec(await client.call<{ nowSec?: number } | null>(ApiMethod.LocationLookup, { aor })) + o.expires;
        const binding = {
          aor, contact, expires, ...(o.q === undefined ? {} : { q: o.q }), ...(o.path === undefined ? {} : { path: o.path }),
          ...(o.received === undefined ? {} : { received: o.received }), ...(o.socket === undefined ? {} : { socket: o.socket }),
        };
        const r = await client.call<PublishResult>(ApiMethod.LocationPublish, { edits: [{ op: "upsert", binding }] });
        if (opts.json) printJson(r);
        else print(`binding ${cellText(aor)} -> ${cellText(contact)} (${o.expires === undefined ? "permanent" : `expires in ${o.expires} s`})`);
        if (!opts.json) for (const note of r.notes ?? []) io.stderr.write(`locmesh: note: ${note}\n`);
      }),
    );
  withClientOptions(
    location.command("rm").argument("<aor>", "address of record").argument("[contact]", "the one contact to remove (default: every binding of the AoR)"),
  ).description("remove a binding, or every binding of an AoR, on every node (a phone still registered comes back at its next REGISTER)")
    .action(
      run(async (client, opts, aor: string, contact: string | undefined) => {
        const edit = contact === undefined ? { op: "remove-aor", aor } : { op: "remove", aor, contact };
        const r = await client.call<PublishResult>(ApiMethod.LocationPublish, { edits: [edit] });
        if (r.accepted === 0) {
          throw new RpcError(ErrorCode.NotFound, `${contact === undefined ? `${aor} has no binding` : `${aor} has no binding ${contact}`} in this node's journal: nothing removed (\`locmesh location show ${aor}\` lists what it has)`);
        }
        if (opts.json) printJson(r);
        else print(`removed ${r.accepted} binding${r.accepted === 1 ? "" : "s"} of ${cellText(aor)}`);
        if (!opts.json) for (const note of r.notes ?? []) io.stderr.write(`locmesh: note: ${note}\n`);
      }),
    );

  withClientOptions(
    program
      .command("resync")
      .option("--peer <id>", "resync from this peer (default: the agent picks one)")
      .option("--kamailio", "instead, write the whole live state into the local Kamailio again"),
  )
    .description("pull a full copy from a peer (or refill the local Kamailio) and follow its progress")
    .addHelpText("after", "\nThe run belongs to the agent: Ctrl-C stops following it (exit 130), not the run (follow it again in `locmesh status`).\nWith --json, one JSON line per progress update and one at the end: the resync's status as in\n`locmesh status --json` (resync), or with --kamailio the reload's (kamailio.reload: state, done, total, ...).")
    .action(
      run(async (client, opts) => {
        const o = opts as ResyncOpts;
        // Ctrl-C stops following (the help says so): the bar is put away, which turns the terminal's
        // line wrapping back on, and the command ends as a Ctrl-C'd one, 130. Left to Node's default,
        // the process died with the terminal's wrapping still off. Once: a second Ctrl-C kills.
        const signals = io.signals ?? process;
        const stop = new AbortController();
        const onSigint = () => stop.abort();
        signals.once("SIGINT", onSigint);
        try {
          const follow = { json: opts.json === true, stdout: io.stdout, signal: stop.signal };
          if (o.kamailio) {
            const failed = reloadFailure(await runKamailioReload(client, follow));
            if (failed) throw failed;
            return;
          }
          const r = await runResync(client, { ...follow, peer: o.peer });
          if (r.state === "failed") throw new Error(`resync failed: ${r.error ?? "no reason given (see the agent's log)"}`);
        } finally {
          signals.off("SIGINT", onSigint);
        }
      }, (opts) => {
        // A peer's journal and the local Kamailio are different targets: neither flag wins silently.
        const o = opts as ResyncOpts;
        if (o.kamailio && o.peer !== undefined) {
          throw new UsageError("--kamailio and --peer exclude each other: --kamailio refills the local Kamailio from this node's journal, --peer picks the peer to resync the journal from; give one of them");
        }
      }),
    );
}

function withClientOptions(cmd: Command): Command {
  return cmd
    .option("--url <url>", `agent API URL (default: --config's api.listen, else LOCMESH_API_URL, else ${DEFAULT_API_URL})`)
    .option("--token <token>", "API token (default: LOCMESH_API_TOKEN, else --config's api.token or api.tokenFile)")
    .option("-c, --config <file>", "agent config file to take the API address and token from (default: LOCMESH_CONFIG)")
    .option("--json", "print raw JSON instead of tables");
}

function withListOptions(cmd: Command): Command {
  return withClientOptions(cmd)
    .option("--search <text>", "only entries containing this text")
    .option("--limit <n>", `entries per page (1-${MAX_PAGE})`, parseLimit)
    .option("--all", "fetch every page");
}

function parsePositive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 31) throw new InvalidArgumentError("must be a whole number of seconds, 1 or more");
  return n;
}

function parseQ(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError("must be a number from 0 to 1");
  return n;
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE) throw new InvalidArgumentError(`must be a whole number from 1 to ${MAX_PAGE}`);
  return n;
}

/** The API URL and token, in the precedence the option help describes. */
export function resolveTarget(opts: ClientOpts, env: Record<string, string | undefined>): { url: string; token: string } {
  const given = opts.token ?? (env["LOCMESH_API_TOKEN"] || undefined);
  // With --url and a token given the config has nothing to add (its api.listen comes after --url,
  // its token after --token and LOCMESH_API_TOKEN), so it is not read: a LOCMESH_CONFIG exported
  // for other commands, unreadable or broken, failed the command (exit 2) for nothing. Without
  // --url it is read: its api.listen comes before LOCMESH_API_URL.
  const file = opts.url !== undefined && given !== undefined ? undefined : opts.config ?? (env["LOCMESH_CONFIG"] || undefined);
  // With a token given, the config's token file is not read: it may be readable by the agent only.
  const fromConfig = file === undefined ? { listen: null, token: null } : loadApiSettings({ file, env, readToken: given === undefined });
  const url = opts.url ?? (fromConfig.listen ? listenToUrl(fromConfig.listen) : undefined) ?? (env["LOCMESH_API_URL"] || DEFAULT_API_URL);
  checkApiUrl(url, opts.url !== undefined ? "--url" : fromConfig.listen ? `${file}'s api.listen` : env["LOCMESH_API_URL"] ? "LOCMESH_API_URL" : "the default");
  const token = given ?? fromConfig.token;
  if (!token) throw new UsageError("no API token: pass --token, set LOCMESH_API_TOKEN, or point --config at the agent's config");
  return { url, token };
}

/**
 * An API URL the client can dial, or an error naming what is wrong and where it came from
 * (api-url.ts). The URL is shown without a password it may hold.
 */
function checkApiUrl(url: string, from: string): void {
  const fault = apiUrlFault(url);
  if (fault !== null) throw new UsageError(`the API URL ${JSON.stringify(redactUrl(url))} (from ${from}) ${fault}`);
}

/** One page, or with --all every page followed through `next` and returned as one list. */
async function listPages<T>(client: ApiClient, method: string, opts: ListOpts, callOpts?: { timeoutMs?: number }): Promise<ListResult<T>> {
  const base = { search: opts.search ?? "", ...(opts.limit || opts.all ? { limit: opts.limit ?? MAX_PAGE } : {}) };
  let page = await client.call<ListResult<T>>(method, base, callOpts);
  if (!opts.all) return page;
  const items = [...page.items];
  while (page.next !== null) {
    page = await client.call<ListResult<T>>(method, { ...base, after: page.next }, callOpts);
    items.push(...page.items);
  }
  // The last page's other fields (kamailio.list's summary) come along.
  return { ...page, items, next: null };
}

function pageFooter(page: ListResult<unknown>, what: string): string {
  if (page.next === null) return "";
  return `\n\nshowing ${page.items.length} of ${page.total} ${what}; use --all for every page or --limit for bigger pages`;
}

/**
 * What a script can tell apart (the README's CLI section lists them). interrupted: 128 + SIGINT,
 * what a shell reports for a command Ctrl-C ended.
 */
const EXIT = { failed: 1, usage: 2, unreachable: 3, refused: 4, interrupted: 130 } as const;

/** A problem with how the command was called or configured: the flags, the config, the URL (exit 2). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError) return EXIT.usage;
  if (err instanceof AgentUnreachableError) return EXIT.unreachable;
  if (err instanceof FollowStopped) return EXIT.interrupted;
  if (err instanceof RpcError && (err.code === ErrorCode.Unauthorized || err.code === ErrorCode.TooManyAttempts)) return EXIT.refused;
  return EXIT.failed;
}

function describeError(err: unknown): string {
  if (err instanceof ConfigError) return cellText(`${err.message.split("\n")[0] ?? ""} ${err.problems.join("; ")}`);
  return cellText(err instanceof Error ? err.message : String(err));
}

const nowSec = () => Math.floor(Date.now() / 1000);

/**
 * The agent's clock (Unix s) from an answer's `nowSec`, which decided what is live: expiries are
 * counted down from it, not from this host's clock, which may be minutes off the agent's (`--url`
 * to another machine). This host's clock for an answer without one (an older agent).
 */
function agentNowSec(answer: unknown): number {
  const n = answer !== null && typeof answer === "object" ? (answer as { nowSec?: unknown }).nowSec : undefined;
  return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : nowSec();
}
