/**
 * `work`, wrapped so that at most `limit` calls run at once; later calls wait for a free lane. Each
 * call's promise settles with its own result, so callers may await them in any order.
 */
export function limited<A, R>(limit: number, work: (arg: A) => Promise<R>): (arg: A) => Promise<R> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (arg) => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await work(arg);
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}
