import { LayoutDirectory } from '../layout/directory.js';
import { storePaths } from './paths.js';

/** The store's blobs as an OCI image layout; pushes stage in the store's `tmp/`. */
export function storeLayout(root: string): LayoutDirectory {
  return new LayoutDirectory(root, { ingestDir: storePaths.tmp(root), location: `store ${root}` });
}
