import { OcipkgError } from '../../errors.js';
import type { ByteRange, ObjectInfo } from './range.js';

/**
 * Apple's text-based dylib stubs (`.tbd`): what ld64 (and ld64.lld) link against in place of a
 * dylib. Only two facts are read, the install name and the targets, from the YAML forms (tbd v1 to
 * v4: `install-name:`, and `targets: [ arm64-macos ]` or v1-v3's `archs:` with `platform:`) and the
 * JSON one (v5: `install_names`, `target_info`). Everything else in a stub is the linker's business.
 */

const MAX_STUB = 16 << 20;

export function isTbd(head: Buffer): boolean {
  const text = head.toString('latin1');
  return /^---\s*(!tapi-tbd|\r?\narchs:)/.test(text) || /^\{\s*"tapi_tbd_version"/.test(text);
}

function architecture(arch: string): string | undefined {
  if (arch === 'x86_64' || arch === 'x86_64h') return 'amd64';
  if (arch === 'arm64' || arch === 'arm64e') return 'arm64';
  if (arch === 'i386') return '386';
  return undefined;
}

/** `[ a, b ]` or a single value, as YAML writes a short flow sequence; quotes dropped. */
function yamlList(text: string, key: string): string[] {
  const m = new RegExp(`^${key}:\\s*(\\[[^\\]]*\\]|[^\\n#]+)`, 'm').exec(text);
  if (!m) return [];
  return m[1]!.replace(/^\[|\]$/g, '').split(',').map((v) => v.trim().replace(/^['"]|['"]$/g, '')).filter((v) => v !== '');
}

function stubObjects(where: string, installName: string | undefined, targets: string[]): ObjectInfo[] {
  const out: ObjectInfo[] = [];
  for (const target of targets) {
    const dash = target.indexOf('-');
    const [arch, platform] = dash < 0 ? [target, 'macos'] : [target.slice(0, dash), target.slice(dash + 1)];
    const mapped = architecture(arch);
    // Only macOS stubs name a target ocipkg knows; iOS and Mac Catalyst slices are another OS.
    if (mapped === undefined || (platform !== 'macos' && platform !== 'macosx')) continue;
    out.push({ where: `${where}[${arch}]`, format: 'tbd', architecture: mapped, os: 'darwin', bits: mapped === '386' ? 32 : 64, endian: 'little', type: 'shared', ...(installName !== undefined && { soname: installName }) });
  }
  return out;
}

export async function inspectTbd(range: ByteRange): Promise<ObjectInfo[]> {
  if (range.size > MAX_STUB) throw new OcipkgError('EINPUT', `${range.where}: a .tbd stub over ${MAX_STUB >> 20} MiB`);
  const text = (await range.read(0, range.size)).toString('utf8');
  if (text.startsWith('{')) {
    let doc: { main_library?: { install_names?: { name?: unknown }[]; target_info?: { target?: unknown }[] } };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch {
      throw new OcipkgError('EINPUT', `${range.where}: a JSON .tbd stub that is not JSON`);
    }
    const name = doc.main_library?.install_names?.[0]?.name;
    const targets = (doc.main_library?.target_info ?? []).map((t) => t.target).filter((t): t is string => typeof t === 'string');
    return stubObjects(range.where, typeof name === 'string' ? name : undefined, targets);
  }
  // Only the first document: the main library (later ones describe re-exported libraries).
  const main = text.split(/^\.\.\.\s*$/m)[0]!;
  const installName = yamlList(main, 'install-name')[0];
  let targets = yamlList(main, 'targets');
  if (targets.length === 0) {
    const platform = yamlList(main, 'platform')[0] ?? 'macosx';
    targets = yamlList(main, 'archs').map((arch) => `${arch}-${platform}`);
  }
  return stubObjects(range.where, installName, targets);
}
