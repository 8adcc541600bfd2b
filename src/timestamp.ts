/**
 * The time a store record keeps (when a package was fetched, a tag last looked up), as
 * `Date.prototype.toISOString()` writes it, made from the UTC fields. V8's own toISOString works out
 * the host's time zone first, and that loads ICU's time-zone data and code: ~1 MiB resident in every
 * process that records a time, every get among them.
 */
export function isoTimestamp(ms: number = Date.now()): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, '0');
  const date = `${String(d.getUTCFullYear()).padStart(4, '0')}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`;
  return `${date}T${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${String(d.getUTCMilliseconds()).padStart(3, '0')}Z`;
}
