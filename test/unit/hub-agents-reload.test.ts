/**
 * The agent list a hub's SIGHUP applies. A SIGHUP that changed the hub's nodeId (which waits for a
 * restart) and listed the running id in mesh.agents passed the loader's check, made against the new
 * id, and the hub then admitted an agent under its own id.
 */
import { describe, expect, it } from "vitest";
import { agentsToApply } from "../../hub/agents-reload.js";

const hub = (nodeId: string, agents: string[], acceptUnlisted = false) => ({ nodeId, mesh: { agents, acceptUnlisted } }) as Parameters<typeof agentsToApply>[0];

describe("agentsToApply", () => {
  it("applies a changed list", () => {
    expect(agentsToApply(hub("hub1", ["a1", "a2"]), hub("hub1", ["a1", "a3"]), ["a1", "a2"])).toEqual({ agents: ["a1", "a3"], held: null });
  });

  it("refuses, whole, a list that names the running hub while the config's nodeId changed (the new id waits for a restart)", () => {
    const r = agentsToApply(hub("hub1", ["a1", "a2"]), hub("hub9", ["a1", "hub1", "a4"]), ["a1", "a2"]);
    expect(r.agents).toEqual(["a1", "a2"]);
    expect(r.held?.kept).toEqual(["a1", "a2"]);
    expect(r.held?.message).toMatch(/not applying mesh\.agents: it lists hub1, the id this hub runs as \(the config's nodeId hub9 takes effect only when the hub restarts\)/);
    expect(r.held?.message).toMatch(/to rename this hub, restart it/);
  });

  it("keeps the agents a list emptied for mesh.acceptUnlisted drops until the restart, and takes those it adds", () => {
    const r = agentsToApply(hub("hub1", ["a1", "a2"]), hub("hub1", ["a3"], true), ["a1", "a2"]);
    expect(r.agents).toEqual(["a1", "a2", "a3"]);
    expect(r.held?.kept).toEqual(["a1", "a2"]);
    expect(r.held?.message).toMatch(/mesh\.acceptUnlisted was turned on in the same change/);
  });

  it("applies a shorter list when acceptUnlisted was already on", () => {
    expect(agentsToApply(hub("hub1", ["a1", "a2"], true), hub("hub1", [], true), ["a1", "a2"])).toEqual({ agents: [], held: null });
  });
});
