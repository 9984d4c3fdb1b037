/**
 * One PostgreSQL connection for a one-off command (`locmesh hub migrate`, `hub forget`), closed
 * after. It has the hub's timeouts and keepalive (pg-connection.ts), and a failure to reach
 * PostgreSQL names it, its address and what to check.
 */
import pg from "pg";
import { pgClientConfig, pgStartError, type PgConnectionSettings } from "./pg-connection.js";

export async function withPgClient<T>(settings: PgConnectionSettings, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(pgClientConfig(settings));
  try {
    await client.connect();
  } catch (err) {
    throw pgStartError(err, settings, true);
  }
  try {
    return await use(client);
  } catch (err) {
    throw pgStartError(err, settings);
  } finally {
    await client.end();
  }
}
