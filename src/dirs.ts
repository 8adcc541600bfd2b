import envPaths from 'env-paths';

/**
 * ocipkg's own directories: `$OCIPKG_DATA_DIR` / `$OCIPKG_CONFIG_DIR` when set, else the
 * platform's data and config directories for `ocipkg` (`~/.local/share/ocipkg`,
 * `~/.config/ocipkg` on Linux). Import-light: the warm path asks for both.
 */
const platform = () => envPaths('ocipkg', { suffix: '' });

export function dataDir(): string {
  return process.env.OCIPKG_DATA_DIR || platform().data;
}

export function configDir(): string {
  return process.env.OCIPKG_CONFIG_DIR || platform().config;
}
