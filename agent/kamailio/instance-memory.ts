/**
 * Which Kamailio instance this node's Kamailio holds the whole live state of, kept on disk
 * (dataDir/kamailio-instance.json) so that it survives the agent.
 *
 * An instance is written down only once a reload into it has finished, not when it is first
 * seen: an agent that stops mid-reload (killed, restarted, the reload failed) must reload again
 * when it comes back. Were the new instance already on disk, the agent would take the half-filled
 * Kamailio for whole, and its reconcile would read the bindings not yet put back as
 * de-registrations and remove them from every node.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { sameInstance, type KamailioInstance } from "./core-rpc.js";

export interface InstanceMemory {
  /** The instance seen now: "whole" if it is the one last reloaded (or left whole), else it needs a reload. */
  observe(now: KamailioInstance): "whole" | "first contact" | "restarted";
  /** The instance seen last (null before the first observe). */
  current(): KamailioInstance | null;
  /** A reload into the current instance finished: it is whole, also after an agent restart. */
  whole(): void;
}

export function createInstanceMemory(file: string): InstanceMemory {
  const read = (): KamailioInstance | null => {
    try {
      return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as KamailioInstance) : null;
    } catch {
      return null;
    }
  };
  let known = read();
  let current: KamailioInstance | null = null;
  return {
    observe(now) {
      current = now;
      if (known !== null && sameInstance(known, now)) return "whole";
      return known === null ? "first contact" : "restarted";
    },
    current: () => current,
    whole() {
      if (current === null) return;
      writeFileSync(`${file}.tmp`, JSON.stringify(current));
      renameSync(`${file}.tmp`, file);
      known = current;
    },
  };
}
