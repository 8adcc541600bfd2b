import { isOcipkgError } from '../../src/errors.js';

/** The `code` of the OcipkgError a promise rejects with; anything else fails the test. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (isOcipkgError(err)) return err.code;
    throw err;
  }
  throw new Error('expected an OcipkgError, got success');
}

/** The `code` of the OcipkgError a synchronous call throws; anything else fails the test. */
export function codeOfSync(body: () => unknown): string {
  try {
    body();
  } catch (err) {
    if (isOcipkgError(err)) return err.code;
    throw err;
  }
  throw new Error('expected an OcipkgError, got success');
}
