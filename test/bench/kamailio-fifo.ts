/**
 * ul.add throughput into a real Kamailio 5.6, per jsonrpcs transport:
 *   FIFO (agent/kamailio/fifo-client.ts), sequential and pipelined;
 *   UDP datagrams (agent/kamailio/dgram-client.ts, dgram_workers 4), sequential and pipelined;
 *   HTTP via xhttp (measured with a bare keep-alive client; locmesh ships no HTTP client);
 * plus how long a full ul.dump takes over the FIFO as the table grows.
 *
 * Run: npx tsc -p tsconfig.build.json && node dist/test/bench/kamailio-fifo.js [adds-per-run]
 */
import { Agent, request } from "node:http";
import { createDgramClient } from "../../agent/kamailio/dgram-client.js";
import { createFifoClient } from "../../agent/kamailio/fifo-client.js";
import type { KamailioRpc, RpcParams } from "../../agent/kamailio/jsonrpcs-wire.js";
import { createUsrlocRpc } from "../../agent/kamailio/usrloc-rpc.js";
import { silentLogger } from "../../agent/ops/logger.js";
import { startKamailio } from "../support/kamailio-process.js";

const N = Number(process.argv[2] ?? 5000);
const nowSec = (): number => Math.floor(Date.now() / 1000);
let seq = 0;

/** N ul.add calls of fresh AoRs, `inFlight` at a time; returns calls per second. */
async function addRate(rpc: KamailioRpc, inFlight: number): Promise<number> {
  const ul = createUsrlocRpc({ rpc });
  const run = seq++;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < N; i = next++) {
        await ul.ulAdd("location", `b${run}x${i}@example.com`, {
          contact: `sip:b${i}@192.0.2.1:5060`, expires: nowSec() + 3600, q: -1, path: "", received: "", socket: "", flags: 0, cflags: 0, methods: 4294967295,
        }, nowSec());
      }
    }),
  );
  return N / ((performance.now() - t0) / 1000);
}

async function fill(rpc: KamailioRpc, from: number, to: number): Promise<void> {
  const calls: Promise<unknown>[] = [];
  for (let i = from; i < to; i++) calls.push(rpc.call("ul.add", ["location", `d${i}@example.com`, `sip:d${i}@192.0.2.1`, 3600, -1, ".", 0, 0, 4294967295]));
  await Promise.all(calls);
}

/** Just enough JSON-RPC over HTTP to measure xhttp + jsonrpc_dispatch(). */
function httpRpc(port: number): KamailioRpc {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  let id = 0;
  return {
    call<T>(method: string, params?: RpcParams): Promise<T> {
      const body = JSON.stringify({ jsonrpc: "2.0", method, params, id: ++id });
      return new Promise<T>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, path: "/RPC", method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
          let data = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (data += c));
          res.on("end", () => {
            const reply = JSON.parse(data) as { result?: T; error?: { message: string } };
            if (reply.error) reject(new Error(reply.error.message));
            else resolve(reply.result as T);
          });
        });
        req.on("error", reject);
        req.end(body);
      });
    },
    async close() {
      agent.destroy();
    },
  };
}

async function main(): Promise<void> {
  const log = silentLogger();
  const kam = await startKamailio({ dgramWorkers: 4, http: true, shmMb: 256 });
  const rows: [string, string][] = [];
  const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");
  try {
    const fifo = createFifoClient({ fifoPath: kam.fifoPath, replyDir: kam.replyDir, timeoutMs: 30_000, log, maxInFlight: 64 });
    await fifo.call("core.version");
    rows.push(["FIFO ul.add, sequential", fmt(await addRate(fifo, 1))]);
    for (const k of [4, 20, 64]) rows.push([`FIFO ul.add, ${k} in flight`, fmt(await addRate(fifo, k))]);

    const dgram = await createDgramClient({ host: "127.0.0.1", port: kam.dgramPort!, timeoutMs: 5000, log, maxInFlight: 64 });
    rows.push(["UDP ul.add, sequential", fmt(await addRate(dgram, 1))]);
    for (const k of [4, 20, 64]) rows.push([`UDP ul.add, ${k} in flight (dgram_workers 4)`, fmt(await addRate(dgram, k))]);
    await dgram.close();

    const http = httpRpc(kam.httpPort!);
    rows.push(["HTTP ul.add, sequential (keep-alive)", fmt(await addRate(http, 1))]);
    for (const k of [4, 20]) rows.push([`HTTP ul.add, ${k} connections (children=2)`, fmt(await addRate(http, k))]);
    await http.close();

    // ul.dump's cost grows with the square of the table (see usrloc-rpc.ts), so it gets its own
    // series on an emptied table: a restart empties usrloc in db_mode 0.
    await kam.restart();
    const ul = createUsrlocRpc({ rpc: fifo });
    let filled = 0;
    for (const size of [2000, 8000, 16000]) {
      await fill(fifo, filled, size);
      filled = size;
      const t0 = performance.now();
      const contacts = (await ul.ulDump()).length;
      rows.push([`FIFO ul.dump of ${fmt(contacts)} contacts, ms`, fmt(performance.now() - t0)]);
    }
    await fifo.close();
  } finally {
    await kam.close();
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log(`Kamailio 5.6 jsonrpcs, ${fmt(N)} ul.add per row (calls/s unless stated)`);
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v.padStart(9)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
