import { OcipkgError } from '../errors.js';
import { forgetSession, RegistrySession } from './auth.js';
import { keyRegistry, ocipkgAuthFile, removeCredentials, saveCredentials } from './credentials.js';
import { registryOrigin, statusError } from './http.js';

/** `ghcr.io`, `https://index.docker.io/v1/`, `127.0.0.1:5000` -> the registry key credentials use. */
function registryKey(input: string): string {
  const registry = input.trim() === '' ? undefined : keyRegistry(input.trim());
  if (registry === undefined || registry === '') {
    throw new OcipkgError('EUSAGE', `"${input}" is not a registry host (expected HOST[:PORT], e.g. ghcr.io)`);
  }
  return registry;
}

/**
 * Checks the credentials against the registry (GET /v2/ through the full auth flow, so a token
 * service sees them too) and only then stores them in ocipkg's auth file. A refused login stores
 * nothing.
 */
export async function login(registry: string, username: string, password: string): Promise<void> {
  const host = registryKey(registry);
  const session = new RegistrySession(host, { username, password });
  const res = await session.send({ method: 'GET', url: new URL('/v2/', await registryOrigin(host)), headers: {}, scopes: [] });
  if (res.statusCode === 401) {
    await res.body.dump();
    throw new OcipkgError('EAUTH', `${host} refused the credentials of user "${username}"`);
  }
  if (res.statusCode !== 200) throw await statusError(res, `the API root of ${host}`, host);
  await res.body.dump();
  await saveCredentials(host, { username, password });
  // Sessions already open in this process learnt the old credentials (or none).
  forgetSession(host);
}

/** Removes a registry's credentials from ocipkg's auth file (other tools' files are left alone). */
export async function logout(registry: string): Promise<void> {
  const host = registryKey(registry);
  if (!(await removeCredentials(host))) {
    throw new OcipkgError('ECREDENTIALS', `not logged in to ${host}: no entry in ${ocipkgAuthFile()}`);
  }
  forgetSession(host);
}
