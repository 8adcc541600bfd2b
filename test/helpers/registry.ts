/** Typed face of scripts/registry.mjs, the registry launcher shared by tests, demo and benchmarks. */
import { freePort as freePortJs, startRegistry as startRegistryJs } from '../../scripts/registry.mjs';

/** A CNCF distribution registry (Debian's `docker-registry`) on 127.0.0.1, for one test file. */
export interface TestRegistry {
  /** `127.0.0.1:PORT`, usable as the registry part of an image reference. */
  host: string;
  url: string;
  /** Temporary root; the registry's blobs live under `data/docker/registry/v2`. */
  root: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** Extra YAML appended under the top level of the config (e.g. an `auth:` section). */
  extraConfig?: string;
}

export const freePort: () => Promise<number> = freePortJs;
export const startRegistry: (options?: RegistryOptions) => Promise<TestRegistry> = startRegistryJs;
