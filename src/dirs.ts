import { join } from 'node:path';

/**
 * ocipkg's own directories: `$OCIPKG_DATA_DIR` / `$OCIPKG_CONFIG_DIR` when set, else the
 * platform's data and config directories for `ocipkg`, where env-paths puts them (the package
 * ocipkg used before), but for the store on macOS:
 *
 *   Linux and others   $XDG_DATA_HOME/ocipkg (~/.local/share/ocipkg), $XDG_CONFIG_HOME/ocipkg (~/.config/ocipkg)
 *   macOS              $XDG_DATA_HOME/ocipkg (~/.local/share/ocipkg), ~/Library/Preferences/ocipkg
 *   Windows            %LOCALAPPDATA%\ocipkg\Data, %APPDATA%\ocipkg\Config
 *
 * The store's paths end up in Makefiles: node-gyp's make generator (macOS's as Linux's) writes
 * include and library paths unquoted, and env-paths' `~/Library/Application Support` has a space,
 * which broke every node-gyp build on a Mac. So the store follows XDG there, as uv's does.
 *
 * Written out here rather than imported: env-paths loads `node:os` and works out every directory
 * when it is imported, which the warm path paid on every ocipkg-link call (measured: ~0.2 ms of the
 * ~4 ms that `require('ocipkg').flags()` adds to a Node start). The home directory is $HOME
 * ($USERPROFILE on Windows), as os.homedir() answers when it is set; os is asked only when not.
 */
const NAME = 'ocipkg';

function home(): string {
  const set = process.platform === 'win32' ? process.env.USERPROFILE : process.env.HOME;
  return set || process.getBuiltinModule('node:os').homedir();
}

function platformDirs(): { data: string; config: string } {
  const { env } = process;
  if (process.platform === 'darwin') {
    return { data: join(env.XDG_DATA_HOME || join(home(), '.local', 'share'), NAME), config: join(home(), 'Library', 'Preferences', NAME) };
  }
  if (process.platform === 'win32') {
    const localAppData = env.LOCALAPPDATA || join(home(), 'AppData', 'Local');
    const appData = env.APPDATA || join(home(), 'AppData', 'Roaming');
    return { data: join(localAppData, NAME, 'Data'), config: join(appData, NAME, 'Config') };
  }
  return {
    data: join(env.XDG_DATA_HOME || join(home(), '.local', 'share'), NAME),
    config: join(env.XDG_CONFIG_HOME || join(home(), '.config'), NAME),
  };
}

export function dataDir(): string {
  return process.env.OCIPKG_DATA_DIR || platformDirs().data;
}

export function configDir(): string {
  return process.env.OCIPKG_CONFIG_DIR || platformDirs().config;
}
