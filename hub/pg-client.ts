/** One PostgreSQL connection for a one-off command (`locmesh hub migrate`, `hub forget`), closed after. */
import pg from "pg";

export async function withPgClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}
