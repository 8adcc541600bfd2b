/**
 * How many packages an install fetches side by side (the store takes concurrent fetches): as many
 * as the machine has cores, at least two. Inflating is what a cold fetch spends its time on, and
 * more at once only take turns (measured on 2 cores: four packages in 1.8 s two at a time, 2.0 s
 * all four). Also what the CLI sizes libuv's pool for (src/cli/common.ts).
 */
export function packageFetchesAtOnce(): number {
  return Math.max(2, process.getBuiltinModule('node:os').availableParallelism());
}

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
