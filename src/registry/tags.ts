import { OcipkgError } from '../errors.js';
import { repositoryScope, sessionFor } from './auth.js';
import { readBody, registryOrigin, statusError } from './http.js';

/** A page of `tags/list` is a short JSON document; this caps what one may make ocipkg read. */
const MAX_PAGE_BYTES = 4 << 20;
/** Pages followed at most: a registry whose `Link` leads on forever is refused, not followed. */
const MAX_PAGES = 1000;

/** The `rel="next"` target of a Link header (RFC 8288), as the distribution spec paginates. */
function nextLink(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header.join(', ') : header;
  return value && /<([^>]+)>\s*;\s*rel="?next"?/.exec(value)?.[1];
}

/** Every tag of a registry repository (`GET /v2/<name>/tags/list`, page by page), in the registry's order. */
export async function listTags(registry: string, repository: string): Promise<string[]> {
  const what = `the tags of ${registry}/${repository}`;
  const origin = await registryOrigin(registry);
  let url: URL | undefined = new URL(`/v2/${repository}/tags/list`, origin);
  const tags: string[] = [];
  for (let page = 0; url !== undefined; page++) {
    if (page === MAX_PAGES) throw new OcipkgError('EREGISTRY', `${what}: more than ${MAX_PAGES} pages`);
    const res = await sessionFor(registry).send({ method: 'GET', url, headers: {}, scopes: [repositoryScope(repository, 'pull')] });
    if (res.statusCode !== 200) throw await statusError(res, what, registry);
    const link = nextLink(res.headers.link);
    let body: { tags?: unknown };
    try {
      body = JSON.parse((await readBody(res, MAX_PAGE_BYTES, what)).toString('utf8')) as typeof body;
    } catch (err) {
      throw new OcipkgError('EREGISTRY', `${what}: the registry's answer is not JSON`, { cause: err });
    }
    // A repository with no tags left answers `"tags": null`.
    if (body.tags !== null && body.tags !== undefined && (!Array.isArray(body.tags) || !body.tags.every((t) => typeof t === 'string'))) {
      throw new OcipkgError('EREGISTRY', `${what}: "tags" is not a list of strings`);
    }
    tags.push(...((body.tags as string[] | null | undefined) ?? []));
    // Relative to the registry, as the spec writes it; another origin is not followed.
    const next: URL | undefined = link === undefined ? undefined : new URL(link, origin);
    if (next !== undefined && next.origin !== new URL(origin).origin) throw new OcipkgError('EREGISTRY', `${what}: the next page is on another origin (${next.origin})`);
    url = next;
  }
  return tags;
}
