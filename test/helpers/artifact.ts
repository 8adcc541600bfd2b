import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** Hand-made artifacts for tests that need content ocipkg itself would never write. */

export interface TarEntry {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'link' | 'chardev' | 'fifo';
  data?: string | Buffer;
  linkname?: string;
  mode?: number;
}

const TYPEFLAG = { file: '0', link: '1', symlink: '2', chardev: '3', dir: '5', fifo: '6' } as const;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar header + data, written by hand so that hostile entries stay exactly as given. */
function entry(e: TarEntry): Buffer {
  const data = Buffer.from(e.data ?? '');
  const header = Buffer.alloc(512);
  header.write(e.name, 0, 100);
  header.write(octal(e.mode ?? 0o644, 8), 100);
  header.write(octal(0, 8), 108);
  header.write(octal(0, 8), 116);
  header.write(octal(e.type === undefined || e.type === 'file' ? data.length : 0, 12), 124);
  header.write(octal(0, 12), 136);
  header.write('        ', 148);
  header.write(TYPEFLAG[e.type ?? 'file'], 156);
  header.write(e.linkname ?? '', 157, 100);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(octal(sum, 7) + ' ', 148);
  const body = e.type === undefined || e.type === 'file' ? data : Buffer.alloc(0);
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header, body, padding]);
}

export function tarball(entries: TarEntry[]): Buffer {
  return Buffer.concat([...entries.map(entry), Buffer.alloc(1024)]);
}

const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/**
 * Writes an OCI image layout holding one ocipkg-style artifact whose single layer holds `entries`,
 * tagged `tag`. The config is the Rust ocipkg's (only `layers`) unless `config` builds another.
 * Returns the manifest digest.
 */
export async function writeArtifactLayout(
  dir: string,
  tag: string,
  entries: TarEntry[],
  config?: (layerDigest: string) => object,
): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (data: Buffer) => {
    const digest = digestOf(data);
    await writeFile(join(blobs, digest.slice(7)), data);
    return { digest, size: data.length };
  };
  const layer = await put(gzipSync(tarball(entries)));
  const configBlob = await put(Buffer.from(JSON.stringify(config?.(layer.digest) ?? { layers: { [layer.digest]: entries.filter((e) => (e.type ?? 'file') === 'file').map((e) => e.name) } })));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.ocipkg.v1.artifact',
      config: { mediaType: 'application/vnd.ocipkg.v1.config+json', ...configBlob },
      layers: [{ mediaType: 'application/vnd.ocipkg.v1.layer.tar+gzip', ...layer }],
    }),
  );
  const manifestDesc = await put(manifest);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifestDesc, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return manifestDesc.digest;
}
