/** Media types of the OCI image spec, Docker's schema 2, and ocipkg artifacts. */
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_LAYER_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const DOCKER_LAYER_TAR_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

/** What the Rust ocipkg (0.3+) writes and reads. */
export const OCIPKG_ARTIFACT = 'application/vnd.ocipkg.v1.artifact';
export const OCIPKG_CONFIG = 'application/vnd.ocipkg.v1.config+json';
export const OCIPKG_LAYER = 'application/vnd.ocipkg.v1.layer.tar+gzip';

/** Manifests and indexes: the documents a tag can point at. */
export const MANIFEST_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];
export const INDEX_TYPES = [OCI_INDEX, DOCKER_MANIFEST_LIST];

/** Layer media types ocipkg can extract, and whether each is gzip-compressed. */
export const LAYER_TYPES: Record<string, { gzip: boolean }> = {
  [OCIPKG_LAYER]: { gzip: true },
  [OCI_LAYER_TAR_GZIP]: { gzip: true },
  [DOCKER_LAYER_TAR_GZIP]: { gzip: true },
  [OCI_LAYER_TAR]: { gzip: false },
};

/** Annotation keys. */
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
export const ANNOTATION_CREATED = 'org.opencontainers.image.created';
export const ANNOTATION_VERSION = 'org.opencontainers.image.version';
export const ANNOTATION_SOURCE = 'org.opencontainers.image.source';
export const ANNOTATION_LICENSES = 'org.opencontainers.image.licenses';
export const ANNOTATION_DESCRIPTION = 'org.opencontainers.image.description';
/** The full target triple of one manifest in an index (the platform object has no libc). */
export const ANNOTATION_TARGET = 'io.github.ocipkg.target';

/** Manifests and indexes larger than this are refused (the distribution spec's suggested limit). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
