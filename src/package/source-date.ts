import { OcipkgError } from '../errors.js';
import { ANNOTATION_CREATED } from '../oci/mediatypes.js';
import { isoTimestamp } from '../timestamp.js';

/**
 * SOURCE_DATE_EPOCH (reproducible-builds.org): the one time a packed artifact may record, so that
 * the same inputs give the same digests on any day.
 */

/** SOURCE_DATE_EPOCH as a Date, or the epoch when unset: the mtime of every layer entry. */
export function sourceDate(): Date {
  const raw = process.env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return new Date(0);
  if (!/^\d+$/.test(raw)) throw new OcipkgError('EUSAGE', `SOURCE_DATE_EPOCH="${raw}" is not a whole number of seconds`);
  return new Date(Number(raw) * 1000);
}

/**
 * The `org.opencontainers.image.created` annotation of a manifest or index: SOURCE_DATE_EPOCH in
 * RFC 3339, or none when it is unset, since any other time would change the digest at every run.
 */
export function createdAnnotation(): { [ANNOTATION_CREATED]?: string } {
  return process.env.SOURCE_DATE_EPOCH ? { [ANNOTATION_CREATED]: isoTimestamp(sourceDate().getTime()).replace(/\.000Z$/, 'Z') } : {};
}
