import { OcipkgError } from '../errors.js';
import { forgetSession, RegistrySession } from './auth.js';
import { configuredHelper, helperWrite, keyRegistry, ocipkgAuthFile, removeCredentials, saveCredentials } from './credentials.js';
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
 * service sees them too) and only then stores them: with the credential helper configured for the
 * registry (docker's `credHelpers` / `credsStore`, in ocipkg's auth file or docker's config.json),
 * as docker login does, else in ocipkg's auth file. A refused login stores nothing. Returns where
 * they went.
 */
export async function login(registry: string, username: string, password: string): Promise<{ registry: string; storedIn: string }> {
  const host = registryKey(registry);
  const session = new RegistrySession(host, { username, password });
  const res = await session.send({ method: 'GET', url: new URL('/v2/', await registryOrigin(host)), headers: {}, scopes: [] });
  if (res.statusCode === 401) {
    await res.body.dump();
    throw new OcipkgError('EAUTH', `${host} refused the credentials of user "${username}"`);
  }
  if (res.statusCode !== 200) throw await statusError(res, `the API root of ${host}`, host);
  await res.body.dump();
  const helper = await configuredHelper(host);
  let storedIn: string;
  if (helper) {
    await helperWrite(helper, host, { username, password });
    // An older entry in ocipkg's own file is looked up first and would shadow the helper's.
    await removeCredentials(host);
    storedIn = `credential helper ${helper.program} (configured in ${helper.file})`;
  } else {
    await saveCredentials(host, { username, password });
    storedIn = ocipkgAuthFile();
  }
  // Sessions already open in this process learnt the old credentials (or none).
  forgetSession(host);
  return { registry: host, storedIn };
}

/**
 * Removes a registry's credentials from ocipkg's auth file and from the credential helper login
 * would store them with (other tools' files are left alone). Not being logged in is no failure, as
 * with docker logout: the result says what was removed, empty when nothing was.
 */
export async function logout(registry: string): Promise<{ registry: string; removedFrom: string[] }> {
  const host = registryKey(registry);
  const removedFrom: string[] = [];
  if (await removeCredentials(host)) removedFrom.push(ocipkgAuthFile());
  const helper = await configuredHelper(host);
  if (helper && (await helperWrite(helper, host, undefined))) {
    removedFrom.push(`credential helper ${helper.program} (configured in ${helper.file})`);
  }
  forgetSession(host);
  return { registry: host, removedFrom };
}
