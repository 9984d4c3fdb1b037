/**
 * A status must answer whether PostgreSQL does or not: it waits for a query so long, then goes on
 * without it. The query keeps running (bounded by postgres.queryTimeoutMs); its outcome is dropped.
 */
export function valueWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}
