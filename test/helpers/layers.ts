import { gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { LayoutDirectory } from '../../src/layout/directory.js';
import { descriptorFor } from '../../src/oci/verify.js';
import { OCI_MANIFEST, OCIPKG_ARTIFACT, OCIPKG_CONFIG, OCIPKG_LAYER } from '../../src/oci/mediatypes.js';
import type { Descriptor } from '../../src/oci/types.js';

/**
 * Builds tar streams entry by entry, headers written with node-tar's Header so that any entry can be
 * produced, hostile ones included (absolute paths, `..`, escaping links, devices, set-uid modes).
 */
export interface TarEntry {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO';
  body?: string | Buffer;
  linkpath?: string;
  mode?: number;
}

export function tarBytes(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const body = entry.body === undefined ? Buffer.alloc(0) : Buffer.from(entry.body);
    const type = entry.type ?? 'File';
    const header = new Header({
      path: entry.path,
      type,
      mode: entry.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      size: type === 'File' ? body.length : 0,
      mtime: new Date(0),
      uid: 0,
      gid: 0,
      ...(entry.linkpath !== undefined && { linkpath: entry.linkpath }),
    });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    blocks.push(block);
    if (type === 'File' && body.length > 0) {
      blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function gzipLayer(entries: TarEntry[]): Buffer {
  return gzipSync(tarBytes(entries));
}

export interface TestImage {
  manifestDesc: Descriptor;
  manifestBytes: Buffer;
  configDesc: Descriptor;
  configBytes: Buffer;
  layers: { desc: Descriptor; bytes: Buffer }[];
}

/**
 * An ocipkg-style image: one gzip'd tar layer per entry list, an ocipkg config, a manifest.
 * `rust: true` writes the config as the Rust ocipkg does, with `layers` only; `metadata` fills `package`.
 */
export function buildImage(
  layerEntries: TarEntry[][],
  options: { layerType?: string; configType?: string; name?: string; rust?: boolean; metadata?: Record<string, unknown> } = {},
): TestImage {
  const layers = layerEntries.map((entries) => {
    const bytes = gzipLayer(entries);
    return { desc: descriptorFor(options.layerType ?? OCIPKG_LAYER, bytes), bytes };
  });
  const config = {
    layers: Object.fromEntries(layers.map((l, i) => [l.desc.digest, layerEntries[i]!.map((e) => e.path)])),
    ...(!options.rust && {
      package: { schema: 1, name: options.name ?? 'demo', libraries: [], includeDirs: [], defines: [], linkFlags: [], requires: [], ...options.metadata },
    }),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDesc = descriptorFor(options.configType ?? OCIPKG_CONFIG, configBytes);
  const manifest = { schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: OCIPKG_ARTIFACT, config: configDesc, layers: layers.map((l) => l.desc) };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { manifestDesc: descriptorFor(OCI_MANIFEST, manifestBytes), manifestBytes, configDesc, configBytes, layers };
}

/** Writes an image into an OCI layout directory (through LayoutDirectory.push) and tags it. */
export async function writeImage(layout: LayoutDirectory, image: TestImage, tag?: string): Promise<void> {
  for (const layer of image.layers) await layout.push(layer.desc, layer.bytes);
  await layout.push(image.configDesc, image.configBytes);
  await layout.push(image.manifestDesc, image.manifestBytes);
  if (tag !== undefined) await layout.tag(image.manifestDesc, tag);
}
