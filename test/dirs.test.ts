import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configDir, dataDir } from '../src/dirs.js';

/**
 * ocipkg's directories are where env-paths put them before dirs.ts wrote them out (a store or a
 * policy must not move under a user who upgrades), but for the store on macOS (see dirs.ts). Each platform's rule, with and without the
 * variables that override it.
 */
describe("ocipkg's directories", () => {
  const saved = { env: { ...process.env }, platform: process.platform };
  const on = (platform: NodeJS.Platform, env: Record<string, string | undefined>) => {
    Object.defineProperty(process, 'platform', { value: platform });
    process.env = { ...env };
  };
  afterEach(() => {
    Object.defineProperty(process, 'platform', { value: saved.platform });
    process.env = { ...saved.env };
  });

  it('follows the XDG base directories on Linux, under $HOME without them', () => {
    on('linux', { HOME: '/home/u' });
    expect([dataDir(), configDir()]).toEqual(['/home/u/.local/share/ocipkg', '/home/u/.config/ocipkg']);
    on('linux', { HOME: '/home/u', XDG_DATA_HOME: '/x/data', XDG_CONFIG_HOME: '/x/config' });
    expect([dataDir(), configDir()]).toEqual(['/x/data/ocipkg', '/x/config/ocipkg']);
  });

  it("keeps the store on macOS where Makefiles can name it (no space), its config in the Library; AppData's folders on Windows", () => {
    on('darwin', { HOME: '/Users/u' });
    expect([dataDir(), configDir()]).toEqual(['/Users/u/.local/share/ocipkg', '/Users/u/Library/Preferences/ocipkg']);
    on('darwin', { HOME: '/Users/u', XDG_DATA_HOME: '/x/data' });
    expect(dataDir()).toBe('/x/data/ocipkg');
    on('win32', { USERPROFILE: '/c/u', LOCALAPPDATA: '/c/local', APPDATA: '/c/roaming' });
    expect([dataDir(), configDir()]).toEqual([join('/c/local', 'ocipkg', 'Data'), join('/c/roaming', 'ocipkg', 'Config')]);
    on('win32', { USERPROFILE: '/c/u' });
    expect([dataDir(), configDir()]).toEqual([join('/c/u', 'AppData', 'Local', 'ocipkg', 'Data'), join('/c/u', 'AppData', 'Roaming', 'ocipkg', 'Config')]);
  });

  it('asks the system for the home directory when $HOME is unset, and lets OCIPKG_DATA_DIR and OCIPKG_CONFIG_DIR win', () => {
    on('linux', {});
    const { homedir } = process.getBuiltinModule('node:os');
    expect(dataDir()).toBe(join(homedir(), '.local', 'share', 'ocipkg'));
    on('linux', { HOME: '/home/u', OCIPKG_DATA_DIR: '/store', OCIPKG_CONFIG_DIR: '/config' });
    expect([dataDir(), configDir()]).toEqual(['/store', '/config']);
  });
});
