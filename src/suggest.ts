import leven from 'leven';

/**
 * "Did you mean": the known name nearest to a mistyped one, when it is near enough to be the
 * likely intent (an edit distance of at most 2, or a third of the longer name, and less than the
 * shorter one's length: `gte` is `get` swapped, `ls` is no mistyped `rm`), else undefined.
 */
export function nearest(input: string, known: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const distance = leven(input.toLowerCase(), name.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [name, distance];
  }
  if (best === undefined || best === input) return undefined;
  const near = bestDistance <= Math.max(2, Math.floor(Math.max(input.length, best.length) / 3)) && bestDistance < Math.min(input.length, best.length);
  return near ? best : undefined;
}

/** ` (did you mean "X"?)`, or nothing. */
export function didYouMean(input: string, known: Iterable<string>, quote = (s: string) => `"${s}"`): string {
  const match = nearest(input, known);
  return match === undefined ? '' : ` (did you mean ${quote(match)}?)`;
}
