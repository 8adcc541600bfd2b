import type { Readable } from 'node:stream';
import type { Descriptor } from './types.js';

/**
 * Anything that holds OCI content: a remote repository, an image layout directory, an oci-archive,
 * the store. Shaped after oras-go's Target so that one `copy` moves artifacts between any two; called
 * a content store here because "target" always means a target triple in ocipkg.
 *
 * Sources hand out raw bytes; the caller (copy, the store) verifies them against the descriptor,
 * so verification lives in one place whatever the source.
 */
export interface ContentSource {
  /** Human-readable location for messages, e.g. `127.0.0.1:5000/acme/zstd` or `oci:dir`. */
  readonly location: string;
  /** A tag or digest to the descriptor of the manifest or index it names. */
  resolve(reference: string): Promise<Descriptor>;
  /** The blob or manifest's bytes as a stream (unverified). */
  fetch(desc: Descriptor): Promise<Readable>;
  /**
   * A blob's bytes from `offset` (0 < offset < size) on, where the source can skip the rest cheaply
   * (a registry, through a Range request); the store resumes an interrupted download with it.
   */
  fetchFrom?(desc: Descriptor, offset: number): Promise<Readable>;
  /** Whether the content is present. */
  exists(desc: Descriptor): Promise<boolean>;
  /**
   * The manifests whose `subject` is `digest`, as the OCI 1.1 referrers API lists them, or
   * undefined where the source has no such API (then clients read the `sha256-<hex>` fallback tag).
   */
  referrers?(digest: string): Promise<Descriptor[] | undefined>;
}

/**
 * Opens a blob's bytes as a stream, each time it is called: a registry upload that fails midway
 * (a reset, a 503) starts again from the first byte with a fresh stream.
 */
export type BlobOpener = () => Promise<Readable>;

export interface ContentSink {
  readonly location: string;
  exists(desc: Descriptor): Promise<boolean>;
  /** Stores content; implementations must verify it against `desc` before it becomes visible. */
  push(desc: Descriptor, content: BlobOpener | Uint8Array): Promise<void>;
  /** Points a tag at a manifest or index already pushed. */
  tag(desc: Descriptor, reference: string): Promise<void>;
}

export type ContentStore = ContentSource & ContentSink;
