import { canonicalReference, parseReference } from '../reference.js';
import type { PackOptions } from '../package/pack.js';

/** The package metadata options `pack` and `publish` share, as parseArgs declares them. */
export const PACK_METADATA_OPTIONS = {
  name: { type: 'string' },
  version: { type: 'string' },
  source: { type: 'string' },
  license: { type: 'string' },
  description: { type: 'string' },
  requires: { type: 'string', multiple: true },
  define: { type: 'string', multiple: true },
  'link-flag': { type: 'string', multiple: true },
} as const;

export const PACK_METADATA_HELP = [
  '  --name NAME             package name (default: last component of IMAGE)',
  '  --version VERSION       org.opencontainers.image.version',
  '  --source URL            org.opencontainers.image.source',
  '  --license SPDX          org.opencontainers.image.licenses',
  '  --description TEXT      org.opencontainers.image.description',
  '  --requires IMAGE        a package this one needs (repeatable)',
  '  --define NAME[=VALUE]   a definition consumers compile with (repeatable)',
  '  --link-flag=FLAG        a flag consumers link after the libraries, e.g. --link-flag=-lm (repeatable)',
  'The .pc files DIR ships add their Cflags -D, Libs and Libs.private; their prefix is made relative.',
].join('\n');

interface MetadataValues {
  name?: string;
  version?: string;
  source?: string;
  license?: string;
  description?: string;
  requires?: string[];
  define?: string[];
  'link-flag'?: string[];
}

/** Parsed metadata options -> pack's options; packing warnings go to stderr. */
export function packMetadata(values: MetadataValues): Omit<PackOptions, 'image'> {
  return {
    ...(values.name !== undefined && { name: values.name }),
    ...(values.version !== undefined && { version: values.version }),
    ...(values.source !== undefined && { source: values.source }),
    ...(values.license !== undefined && { licenses: values.license }),
    ...(values.description !== undefined && { description: values.description }),
    ...(values.requires !== undefined && { requires: values.requires.map((r) => canonicalReference(parseReference(r))) }),
    ...(values.define !== undefined && { defines: values.define }),
    ...(values['link-flag'] !== undefined && { linkFlags: values['link-flag'] }),
    warn: (message: string) => process.stderr.write(`ocipkg: warning: ${message}\n`),
  };
}
