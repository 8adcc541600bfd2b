/**
 * One error type for the whole package. `code` is stable and meant to be matched on by callers and
 * tests; `message` is the one line the CLI prints. Lower-level failures travel in `cause`.
 */
export type ErrorCode =
  | 'EREFERENCE' // malformed image reference
  | 'EUSAGE' // bad command-line usage
  | 'ENOTFOUND' // tag, manifest, blob or package does not exist
  | 'EUNREACHABLE' // registry could not be reached (DNS, refused, timeout, TLS)
  | 'ETLS' // TLS handshake or certificate verification failed
  | 'EAUTH' // authentication required or refused
  | 'EDENIED' // authenticated but not allowed
  | 'EREGISTRY' // registry answered with an unexpected status
  | 'EINTEGRITY' // bytes do not match their digest
  | 'EBADSIZE' // bytes do not match the descriptor's size
  | 'ETOOLARGE' // a manifest or index over the size cap
  | 'EMANIFEST' // a manifest, index or config that is not what it claims to be
  | 'EUNSAFE' // archive entry that would escape the package or is otherwise refused
  | 'ENOTARGET' // the image has no build for the requested target
  | 'ENOLIBS' // a package that provides no libraries
  | 'EINPUT' // a local input (directory, archive, file) is missing or unusable
  | 'EIO' // reading or writing local content failed (ENOSPC, EACCES, a file where a layout's directory belongs)
  | 'ELOCKFILE' // ocipkg-lock.json is unreadable, or does not match package.json under a frozen lockfile
  | 'ECONFLICT' // two versions of one repository are needed at once
  | 'ECREDENTIALS' // a credential helper or credentials file failed
  | 'EKEY' // a signing key is malformed, not ECDSA P-256, or its password is wrong or missing
  | 'ESIGNATURE' // a signed payload is not a cosign image signature
  | 'EUNTRUSTED'; // the trust policy covers an image that no trusted key signed

/** Marks ocipkg's errors, whichever copy of this module made them. */
const BRAND = Symbol.for('ocipkg.error');

export class OcipkgError extends Error {
  readonly code: ErrorCode;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OcipkgError';
    this.code = code;
  }

  /**
   * `instanceof` by brand, not by prototype: ocipkg-link's bundle carries its own copy of this class
   * while errors from the cold path it loads from dist/ are made by the original, and each must
   * recognise the other's (or the CLI reports a registry that is down as an unexpected error).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}

export function isOcipkgError(err: unknown, code?: ErrorCode): err is OcipkgError {
  return err instanceof OcipkgError && (code === undefined || err.code === code);
}

/** The code of a Node system error (`ENOENT`, `EEXIST`, ...), if it is one. */
export function errno(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

/** System errors that are the machine's state (space, permissions, limits), never what a file holds. */
const MACHINE_ERRNOS = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENFILE', 'ENOMEM']);

/**
 * The machine-state system error behind `err` (itself or a cause it wraps), if any: work that
 * failed this way says nothing about the content it was working on.
 */
export function machineFailure(err: unknown): (Error & { code: string; path?: string }) | undefined {
  for (let at = err, depth = 0; at instanceof Error && depth < 8; at = at.cause, depth++) {
    const code = errno(at);
    if (code !== undefined && MACHINE_ERRNOS.has(code)) return at as Error & { code: string; path?: string };
  }
  return undefined;
}

/**
 * Exit statuses that tell a script which kind of failure it met, as curl's and skopeo's do; 1 is
 * every failure of no kind below. The table is what `ocipkg --help` and the README print.
 * (ocipkg-link keeps pkg-config's single 1: build tools rely on nothing finer.)
 */
export const EXIT_STATUSES: readonly { status: number; meaning: string; codes: readonly ErrorCode[] }[] = [
  { status: 2, meaning: 'usage: an unknown command or option, a missing argument, a malformed reference, an alias package.json does not declare', codes: ['EUSAGE', 'EREFERENCE'] },
  { status: 3, meaning: 'not found: no such tag, manifest, blob, package in the store, or build for the target', codes: ['ENOTFOUND', 'ENOTARGET'] },
  { status: 4, meaning: 'unreachable: DNS, connection refused or reset, timeout, TLS', codes: ['EUNREACHABLE', 'ETLS'] },
  { status: 5, meaning: 'authentication: credentials missing, refused or unreadable, or access denied', codes: ['EAUTH', 'EDENIED', 'ECREDENTIALS'] },
  { status: 6, meaning: 'integrity or unsafe content: wrong digest or size, a malformed or oversized manifest, a refused archive entry or package value', codes: ['EINTEGRITY', 'EBADSIZE', 'ETOOLARGE', 'EMANIFEST', 'EUNSAFE'] },
  { status: 7, meaning: 'policy: no trusted signature, or a lockfile that is invalid or does not match package.json under --frozen-lockfile', codes: ['EUNTRUSTED', 'ESIGNATURE', 'ELOCKFILE'] },
];

/** The exit status for a failure with this code (1 for the codes of no kind in EXIT_STATUSES). */
export function exitStatusOf(code: ErrorCode): number {
  return EXIT_STATUSES.find((row) => row.codes.includes(code))?.status ?? 1;
}
