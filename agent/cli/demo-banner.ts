/**
 * What `locmesh demo` prints once everything answers: where each node is, where its files are,
 * and commands to paste into another terminal.
 */
import { join, relative } from "node:path";
import { DEMO_TOKEN, type DemoNode } from "./demo-agents.js";
import { kamailioFiles } from "./demo-kamailio.js";
import { sippRegisterCommand } from "./demo-phone.js";
import { formatTable } from "./table.js";

export interface BannerParams {
  root: string;
  nodes: readonly DemoNode[];
  /** The SIP domain; null with --no-kamailio. */
  domain: string | null;
  /** The sipp REGISTER scenario; null with --no-kamailio. */
  sippScenario: string | null;
  /** Paths are shown relative to this folder when they are inside it. */
  cwd: string;
}

export function demoBanner(p: BannerParams): string {
  const rel = (path: string) => {
    const r = relative(p.cwd, path);
    return r === "" || r.startsWith("..") ? path : r;
  };
  const cli = `node ${rel(join(p.root, "bin", "locmesh.js"))}`;
  const node = (k: number) => p.nodes[k % p.nodes.length] as DemoNode;
  const at = (k: number) => `--url ${node(k).apiUrl} --token ${DEMO_TOKEN}`;
  const common = {
    status: [
      "Cluster health and replication lag (URL and token from the command line, or from a node's config):",
      `  ${cli} status ${at(2)}`,
      `  ${cli} status --config ${rel(node(0).config)}`,
      "",
      "What a node's agent needs, each part checked (config, journal, ports, peers, its Kamailio), with what to do about what fails:",
      `  ${cli} check --config ${rel(node(0).config)}`,
      "",
      `Web UI: open ${p.nodes.map((n) => `${n.apiUrl}/`).join(" or ")} and sign in with ${DEMO_TOKEN}`,
    ],
    footer: ["", "Data stays in the demo folder between runs, so a restart shows that it persisted.", ""],
  };
  if (p.domain === null || p.sippScenario === null) {
    const table = formatTable(["NODE", "MESH", "API", "LOG"], p.nodes.map((n) => [n.id, n.meshUrl, n.apiUrl, rel(n.log)]));
    return [
      `locmesh demo: ${p.nodes.length} agent${p.nodes.length === 1 ? "" : "s"} running on 127.0.0.1 (no Kamailio)`,
      "",
      indent(table),
      "",
      `API token (every node): ${DEMO_TOKEN}`,
      "",
      "Try, in another terminal (an alias written on one node shows up on the others):",
      `  ${cli} alias add ${at(0)} sip:bob@example.com sip:alice@example.com`,
      `  ${cli} alias ls ${at(1)}`,
      `  ${cli} location ls ${at(1)}`,
      "",
      ...common.status,
      "",
      "Press Ctrl-C to stop the agents.",
      ...common.footer,
    ].join("\n");
  }
  const d = p.domain;
  const addresses = formatTable(
    ["NODE", "SIP (udp, tcp)", "AGENT API", "MESH"],
    p.nodes.map((n) => [n.id, `127.0.0.1:${n.ports.sip}`, n.apiUrl, n.meshUrl]),
  );
  const files = formatTable(
    ["NODE", "KAMAILIO CFG", "KAMAILIO LOG", "AGENT LOG"],
    p.nodes.map((n) => {
      const k = kamailioFiles(n.kamailioDir as string);
      return [n.id, rel(k.cfg), rel(k.log), rel(n.log)];
    }),
  );
  return [
    `locmesh demo: ${p.nodes.length} Kamailio node${p.nodes.length === 1 ? "" : "s"} on 127.0.0.1, each with its locmesh agent (SIP domain ${d})`,
    "",
    indent(addresses),
    "",
    `API token (every node): ${DEMO_TOKEN}`,
    "",
    indent(files),
    "",
    "Try, in another terminal:",
    "",
    `Register alice at node 1 with sipp (or any SIP phone: user alice, domain ${d}, proxy 127.0.0.1:${node(0).ports.sip}, no password):`,
    `  ${sippRegisterCommand(rel(p.sippScenario), "alice", node(0).ports.sip)}`,
    "",
    "See the binding on the other nodes: in their agents, and in node 2's Kamailio itself (ul.lookup through its agent):",
    `  ${cli} location ls ${at(1)}`,
    `  ${cli} location show ${at(2)} sip:alice@${d}`,
    `  ${cli} location show --kamailio ${at(1)} sip:alice@${d}`,
    "",
    `Forward bob to alice: calls to bob@${d} then reach alice's phone through any node:`,
    `  ${cli} alias add ${at(0)} sip:bob@${d} sip:alice@${d}`,
    `  ${cli} alias ls ${at(1)}`,
    "",
    ...common.status,
    "",
    "Press Ctrl-C to stop the demo (Kamailio and agents).",
    ...common.footer,
  ].join("\n");
}

const indent = (text: string) => text.split("\n").map((l) => `  ${l}`).join("\n");
