/**
 * The wire text of the session's outgoing requests. A hub sends the same run of changes to every
 * agent: its push pumps share one range read (hub/range-cache.ts), so they hold the very same
 * `changes` array. Its JSON is made and UTF-8 encoded once, and each agent's batch request is that
 * buffer between a few bytes of its own. Stringifying per agent was 18% of the hub's CPU at 10
 * agents; a spliced string then cost as much again in the WebSocket's byteLength and encoding.
 *
 * A `changes` array must not be changed after it has been sent: every holder treats a read range
 * as immutable.
 *
 * A relay sends several origins' batches in one frame, a JSON-RPC batch (an array of requests,
 * JSON-RPC 2.0 §6): `arrayFrame` joins their frames.
 */
import type { JSONRPCRequest } from "json-rpc-2.0";
import { PeerMethod, type BatchParams } from "../contract/protocol.js";
import type { Change } from "../contract/records.js";

const changesJson = new WeakMap<readonly Change[], Buffer>();

function jsonOf(changes: readonly Change[]): Buffer {
  let json = changesJson.get(changes);
  if (json === undefined) {
    json = Buffer.from(JSON.stringify(changes));
    changesJson.set(changes, json);
  }
  return json;
}

/** Room in a frame for a batch request around its changes (the envelope, origin, after, upTo, id). */
export const BATCH_HEAD_BYTES = 1024;

/**
 * The bytes `batch`'s request takes in a frame, at most: its changes' JSON (made here once, and
 * used again when the request is sent) and BATCH_HEAD_BYTES.
 */
export const batchBytes = (batch: BatchParams): number => jsonOf(batch.changes).length + BATCH_HEAD_BYTES;

/** Several requests' frames as one frame: a JSON-RPC batch. */
export function arrayFrame(frames: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [];
  frames.forEach((f, i) => {
    parts.push(Buffer.from(i === 0 ? "[" : ","));
    parts.push(typeof f === "string" ? Buffer.from(f) : f);
  });
  parts.push(Buffer.from("]"));
  return Buffer.concat(parts);
}

/**
 * One request as a text frame's payload: UTF-8 JSON, equal once parsed to `JSON.stringify(req)`.
 * A batch request comes as a Buffer, anything else as a string.
 */
export function requestFrame(req: JSONRPCRequest): string | Buffer {
  if (req.method !== PeerMethod.Batch || req.params === undefined || Array.isArray(req.params)) return JSON.stringify(req);
  const p = req.params as BatchParams;
  if (Object.keys(p).length !== 4 || !Array.isArray(p.changes)) return JSON.stringify(req);
  const id = req.id === undefined ? "" : `,"id":${JSON.stringify(req.id)}`;
  const head = `{"jsonrpc":"2.0","method":${JSON.stringify(req.method)},"params":{"origin":${JSON.stringify(p.origin)},` +
    `"after":${JSON.stringify(p.after)},"upTo":${JSON.stringify(p.upTo)},"changes":`;
  return Buffer.concat([Buffer.from(head), jsonOf(p.changes), Buffer.from(`}${id}}`)]);
}
