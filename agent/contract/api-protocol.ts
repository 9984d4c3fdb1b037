/**
 * The local API's contract: method names, parameter and result shapes, and their validators. The
 * API speaks JSON-RPC 2.0 over HTTP POST and WebSocket (agent/api/); what cluster.status answers is
 * in cluster-status.ts, the Kamailio methods' results in kamailio-status.ts.
 * No Node imports here: the web UI imports this file.
 */
import { z } from "zod";
import { LIMITS, checkPath, checkQ, checkReceived, checkSipTarget, uriAor } from "./sip-uri.js";
import { aor, nodeId, sipUri, socketText, text, uint32 } from "./record-schemas.js";

export const ApiMethod = {
  LocationPublish: "location.publish",
  LocationLookup: "location.lookup",
  LocationList: "location.list",
  AliasSet: "alias.set",
  AliasRemove: "alias.remove",
  AliasList: "alias.list",
  /** One alias's target in the journal (null: none). */
  AliasLookup: "alias.lookup",
  ClusterStatus: "cluster.status",
  ClusterResync: "cluster.resync",
  /** Write the whole live state into the local Kamailio again; progress in cluster.status. */
  KamailioReload: "kamailio.reload",
  /** What the local Kamailio itself holds for an AoR (ul.lookup), beside the journal's view. */
  KamailioLookup: "kamailio.lookup",
  /** The local Kamailio's whole location table (ul.dump), paged, each binding compared with the journal. */
  KamailioList: "kamailio.list",
  /** What the local Kamailio itself holds for an alias (usrloc's aliases domain, or alias_db's table), beside the journal. */
  KamailioAlias: "kamailio.alias",
  AuthLogin: "auth.login",
  /** WebSocket only: from now on, receive `changes.applied` notifications. */
  ChangesSubscribe: "changes.subscribe",
} as const;

/** Notifications the API sends to subscribed WebSocket clients. */
export const ApiNotification = {
  /** params: { changes: Change[] }: versions that won and were stored here, local or replicated. */
  ChangesApplied: "changes.applied",
} as const;

/** A check of sip-uri.ts as a refinement, its message after `what` and the value. */
const checked = <T extends z.ZodTypeAny>(schema: T, what: string, check: (v: z.output<T>) => string | null) =>
  schema.superRefine((v, ctx) => {
    const problem = check(v);
    if (problem) ctx.addIssue({ code: "custom", message: `${what} ${JSON.stringify(v).slice(0, 82)} ${problem}` });
  });

/**
 * A URI the local API takes as a contact or an alias's target: stricter than a peer's change
 * (checkSipTarget says why). Removals and preconditions take any URI a journal may hold.
 */
const sipTarget = checked(sipUri, "SIP URI", (v) => checkSipTarget(v));
/** A binding's contact: the same, and a sip: or sips: URI (Kamailio cannot send to a tel: one). */
const sipContact = checked(sipUri, "SIP URI", (v) => checkSipTarget(v, { tel: false }));

/** A binding as a registrar integration publishes it. Missing optional fields take Kamailio's defaults. */
export const bindingInput = z.strictObject({
  aor,
  contact: sipContact,
  expires: z.number().int().min(0).max(2 ** 40),
  q: checked(z.number(), "q", checkQ).default(-1),
  path: checked(text(LIMITS.path), "path", checkPath).default(""),
  received: checked(text(LIMITS.received), "received", checkReceived).default(""),
  socket: socketText.default(""),
  callid: text(LIMITS.callid).default(""),
  cseq: uint32.default(0),
  userAgent: text(LIMITS.userAgent).default(""),
  flags: uint32.default(0),
  cflags: uint32.default(0),
  methods: uint32.default(4294967295),
  instance: text(LIMITS.instance).default(""),
  regId: uint32.default(0),
  ruid: text(64).default(""),
  /** Defaults to the agent's own node id: the node whose Kamailio took the REGISTER. */
  owner: nodeId.optional(),
});
export type BindingInput = z.input<typeof bindingInput>;

export const locationEdit = z.discriminatedUnion("op", [
  z.strictObject({ op: z.literal("upsert"), binding: bindingInput }),
  z.strictObject({ op: z.literal("remove"), aor, contact: sipUri }),
  z.strictObject({ op: z.literal("remove-aor"), aor }),
]);
export type LocationEdit = z.input<typeof locationEdit>;

export const publishParams = z.strictObject({ edits: z.array(locationEdit).min(1).max(5000) });
export interface PublishResult {
  /** Changes written to the journal (a remove of an unknown binding writes nothing). */
  accepted: number;
  /** On an agent attached to a Kamailio: what did not go into it at once, and when it will. */
  notes?: string[];
}

export const lookupParams = z.strictObject({ aor });
/**
 * The longest cursor text a real row can make: its AoR and contact with every character written as
 * a 6-character JSON escape (JSON.stringify escapes control characters, which a contact may hold:
 * sip-uri.ts), plus brackets, quotes, a comma and some room for whitespace.
 */
const CURSOR_MAX_TEXT = 6 * (LIMITS.aor + LIMITS.contact) + 16;

/**
 * A paging cursor is "" (first page) or the `next` value of the previous page: the JSON pair
 * [key, sub] of the last row it showed. What is bounded is the pair (an AoR and a contact, as any
 * stored row), not the JSON text: a cap of 1,100 characters on the text refused the cursor after a
 * legal contact with control characters, so "Next" failed on such a row.
 */
const cursor = z
  .string()
  .max(CURSOR_MAX_TEXT)
  .refine((v) => {
    if (v === "") return true;
    let c: unknown;
    try {
      c = JSON.parse(v);
    } catch {
      return false;
    }
    return (
      Array.isArray(c) && c.length === 2 &&
      typeof c[0] === "string" && c[0].length <= LIMITS.aor &&
      typeof c[1] === "string" && c[1].length <= LIMITS.contact
    );
  }, "is not a cursor from a previous page's `next`");

export const listParams = z.strictObject({
  search: z.string().max(256).default(""),
  after: cursor.default(""),
  limit: z.number().int().min(1).max(1000).default(100),
});
export type ListParams = z.input<typeof listParams>;
export interface ListResult<T> {
  items: T[];
  /** Pass as `after` to get the next page; null on the last page. */
  next: string | null;
  total: number;
  /**
   * The agent's clock when it answered (Unix s). What is live was decided by it: a reader counting
   * expiries down should use it rather than its own clock (a browser's may be minutes off).
   */
  nowSec?: number;
}

/**
 * Without a precondition, alias.set creates or replaces. `ifAbsent`: only create; an alias that
 * exists is refused with Conflict (an "add" must not overwrite what another admin made).
 * `expectTarget`: only replace that target; an alias changed or removed meanwhile is refused with
 * Conflict (an "edit" must not undo a change it never saw). Both are checked on this node, in the
 * same write turn as the commit (agent/api/alias-preconditions.ts).
 */
export const aliasSetParams = z
  .strictObject({ alias: aor, target: sipTarget, ifAbsent: z.boolean().optional(), expectTarget: sipUri.optional() })
  .refine((p) => !(p.ifAbsent === true && p.expectTarget !== undefined), {
    message: "ifAbsent and expectTarget exclude each other: ifAbsent adds a new alias, expectTarget edits an existing one",
  })
  .refine((p) => uriAor(p.target) !== p.alias, { message: "an alias cannot forward to itself: give another target", path: ["target"] });
/**
 * `expectTarget`: only remove the alias while it forwards to that target; one changed meanwhile is
 * refused with Conflict (a "remove" must not throw away a change it never saw).
 */
export const aliasRemoveParams = z.strictObject({ alias: aor, expectTarget: sipUri.optional() });
export const aliasLookupParams = z.strictObject({ alias: aor });
export const resyncParams = z.strictObject({ peer: nodeId.optional() });
export const loginParams = z.strictObject({ token: z.string().max(4096) });
const noParams = z.strictObject({});
/**
 * summary: instead of every change, `changes.applied` with `{ counts: { loc, alias } }` at most
 * every SUMMARY_INTERVAL_MS: what a screen needs to know it should refresh, a few bytes however
 * many changes a resync brings (the whole changes would pile up unread on a slow link).
 */
export const subscribeParams = z.strictObject({ summary: z.boolean().default(false) });
export const SUMMARY_INTERVAL_MS = 250;

/**
 * Each method's params schema: the server validates with these (agent/api/local-api.ts), and so
 * does whatever else must know what a well-formed call is (the fuzz drill's judge).
 */
export const API_PARAMS = {
  [ApiMethod.LocationPublish]: publishParams,
  [ApiMethod.LocationLookup]: lookupParams,
  [ApiMethod.LocationList]: listParams,
  [ApiMethod.AliasSet]: aliasSetParams,
  [ApiMethod.AliasRemove]: aliasRemoveParams,
  [ApiMethod.AliasList]: listParams,
  [ApiMethod.AliasLookup]: aliasLookupParams,
  [ApiMethod.ClusterStatus]: noParams,
  [ApiMethod.ClusterResync]: resyncParams,
  [ApiMethod.KamailioReload]: noParams,
  [ApiMethod.KamailioLookup]: lookupParams,
  [ApiMethod.KamailioList]: listParams,
  [ApiMethod.KamailioAlias]: aliasLookupParams,
  [ApiMethod.AuthLogin]: loginParams,
  [ApiMethod.ChangesSubscribe]: subscribeParams,
} as const satisfies Record<(typeof ApiMethod)[keyof typeof ApiMethod], z.ZodType>;
