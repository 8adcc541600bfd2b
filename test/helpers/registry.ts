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
  /** YAML appended right after `http.addr`: more `http:` keys, or top-level sections such as `auth:`. */
  extraConfig?: string;
  /** Serve HTTPS with this certificate and key; readiness is checked against the CA file `ca`. */
  tls?: { certificate: string; key: string; ca: string };
}

export const freePort: () => Promise<number> = freePortJs;
export const startRegistry: (options?: RegistryOptions) => Promise<TestRegistry> = startRegistryJs;
