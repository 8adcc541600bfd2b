import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OcipkgError } from '../errors.js';
import { canonicalReference, formatReference, parseReference } from '../reference.js';
import { requirementNamesWithin, resolvePackage } from '../resolve.js';
import { storeRoot } from '../store/paths.js';
import type { TagMove } from '../store/refs.js';
import { selectTriple } from '../triple.js';
import { parseOptions, printJson, printLine, progress, readStdin, runMain, usageError } from './common.js';
import { tuneForTransfers } from '../tuning.js';
import { PACK_METADATA_HELP, PACK_METADATA_OPTIONS, packMetadata } from './pack-options.js';
import { INSTALL_OPTIONS, INSTALL_SUMMARY, INSTALL_USAGE, runInstall, runUpdate, UPDATE_OPTIONS, UPDATE_SUMMARY, UPDATE_USAGE } from './project.js';
import { PUBLISH_OPTIONS, PUBLISH_SUMMARY, PUBLISH_USAGE, runPublish } from './publish.js';
import { OUTDATED_OPTIONS, OUTDATED_SUMMARY, OUTDATED_USAGE } from './outdated.js';
import { GENERATE_KEY_PAIR_OPTIONS, GENERATE_KEY_PAIR_SUMMARY, GENERATE_KEY_PAIR_USAGE } from './keys.js';
import { SIGN_OPTIONS, SIGN_SUMMARY, SIGN_USAGE, VERIFY_OPTIONS, VERIFY_SUMMARY, VERIFY_USAGE } from './sign.js';
import { COPY_OPTIONS, COPY_SUMMARY, COPY_USAGE } from './copy.js';

/**
 * `ocipkg`: a superset of the Rust ocipkg's commands. Each command parses its own options and
 * imports the heavy modules (HTTP, tar) only when it runs, so the store-only commands stay quick.
 */
interface Command {
  usage: string;
  summary: string;
  options: string;
  run(args: string[]): Promise<void>;
}

const out = printLine;

function positionals(values: string[], min: number, max: number, command: string): string[] {
  if (values.length < min) throw usageError(`${command}: missing argument (usage: ${COMMANDS[command]!.usage})`);
  if (values.length > max) throw usageError(`${command}: unexpected argument "${values[max]}" (usage: ${COMMANDS[command]!.usage})`);
  return values;
}

function assertArchive(path: string): void {
  if (!existsSync(path) || !statSync(path).isFile()) throw new OcipkgError('EINPUT', `${path}: no such archive file`);
}

const COMMANDS: Record<string, Command> = {
  pack: {
    usage: 'ocipkg pack DIR OUTPUT -t IMAGE [--target TRIPLE] [options]',
    summary: 'pack an install prefix (include/, lib/, ...) into an oci-archive',
    options: [
      '  -t, --tag IMAGE         image name recorded in the archive (required)',
      '  --target TRIPLE         target triple (default: detected from the libraries)',
      '  --cmake-targets FILE    what a CMake build says about its library targets (definitions, system',
      '                          libraries), as CMake\'s ocipkg_package writes it for its ocipkg-pack target',
      PACK_METADATA_HELP,
    ].join('\n'),
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, {
        tag: { type: 'string', short: 't' }, target: { type: 'string' }, 'cmake-targets': { type: 'string' }, ...PACK_METADATA_OPTIONS,
      }, 'pack');
      const [dir, output] = positionals(pos, 2, 2, 'pack');
      if (!values.tag) throw usageError('pack: -t IMAGE is required');
      const image = canonicalReference(parseReference(values.tag));
      const { pack } = await import('../package/pack.js');
      const result = await pack(dir!, output!, {
        image,
        ...(values.target !== undefined && { target: selectTriple(values.target) }),
        ...(values['cmake-targets'] !== undefined && { cmakeTargets: values['cmake-targets'] }),
        ...packMetadata(values),
      });
      out(result.manifestDigest);
    },
  },
  compose: {
    usage: 'ocipkg compose FILE... -o OUTPUT -t IMAGE',
    summary: 'pack individual files (placed at the package root) into an oci-archive',
    options: '  -o, --output OUTPUT     archive to write (required)\n  -t, --tag IMAGE         image name recorded in the archive (required)',
    async run(args) {
      const { values, positionals: files } = parseOptions(args, { output: { type: 'string', short: 'o' }, tag: { type: 'string', short: 't' } }, 'compose');
      positionals(files, 1, Infinity, 'compose');
      if (!values.output) throw usageError('compose: -o OUTPUT is required');
      if (!values.tag) throw usageError('compose: -t IMAGE is required');
      const image = canonicalReference(parseReference(values.tag));
      const { compose } = await import('../package/compose.js');
      const result = await compose(files, values.output, { image });
      out(result.manifestDigest);
    },
  },
  push: {
    usage: 'ocipkg push ARCHIVE [IMAGE]',
    summary: 'push an oci-archive to a registry (or oci:DIR), under IMAGE or the name it records',
    options: '',
    async run(args) {
      const { positionals: pos } = parseOptions(args, {}, 'push');
      const [archive, image] = positionals(pos, 1, 2, 'push');
      assertArchive(archive!);
      tuneForTransfers();
      const [{ openArchive }, { copy }, { openContent }, { archiveImage, requireName }] = await Promise.all([
        import('../layout/archive.js'), import('../copy.js'), import('../open.js'), import('./archive-name.js'),
      ]);
      const opened = await openArchive(archive!);
      try {
        const { sourceRef, name } = await archiveImage(opened.layout, archive!);
        const dest = parseReference(image ?? requireName(name, archive!));
        progress(`pushing ${archive} to ${canonicalReference(dest)}`);
        const pushed = await copy(opened.layout, sourceRef, openContent(dest), dest.tag ?? (dest.digest ? undefined : 'latest'), {
          onCopied: (desc, skipped) => progress(`  ${skipped ? 'exists ' : 'pushed '} ${desc.digest} ${desc.mediaType}`),
        });
        // The pinned form: what a lockfile or a careful consumer should reference.
        const { tag: _tag, ...untagged } = dest;
        out(formatReference({ ...untagged, digest: pushed.digest }));
      } finally {
        await opened.close();
      }
    },
  },
  publish: { usage: PUBLISH_USAGE, summary: PUBLISH_SUMMARY, options: PUBLISH_OPTIONS, run: runPublish },
  get: {
    usage: 'ocipkg get IMAGE [-f] [--target TRIPLE]',
    summary: 'fetch an image into the local store and print its directory; a tag is looked up again each time, as `docker pull` does',
    options: '  -f, --force             fetch again even if the store has it (a digest or lockfile pin too)\n  --target TRIPLE         target triple (default: npm_config_arch for a cross build, then OCIPKG_TARGET, then the host)\n  --offline               use only the store, never asking where a tag points now (as OCIPKG_OFFLINE=1 does)',
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { force: { type: 'boolean', short: 'f' }, target: { type: 'string' }, offline: { type: 'boolean' } }, 'get');
      const [image] = positionals(pos, 1, 1, 'get');
      const moved = (move: TagMove) => void process.stderr.write(`ocipkg: ${move.image} has moved from ${move.from} to ${move.to}\n`);
      const pkg = await resolvePackage(image!, { force: values.force ?? false, refresh: true, moved, offline: values.offline, progress, beforeFetch: tuneForTransfers, ...(values.target !== undefined && { target: values.target }) });
      out(pkg.root);
    },
  },
  load: {
    usage: 'ocipkg load ARCHIVE [-f] [--target TRIPLE]',
    summary: 'load an oci-archive into the local store under the name it records',
    options: '  -f, --force             load even if the store already has that name\n  --target TRIPLE         for a multi-target archive, the build to load (default: the triple a\n                          single-target archive records)',
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { force: { type: 'boolean', short: 'f' }, target: { type: 'string' } }, 'load');
      const [archive] = positionals(pos, 1, 1, 'load');
      assertArchive(archive!);
      tuneForTransfers();
      const [{ openArchive }, { installImage }, { archiveImage, requireName }, { recordedTarget }] = await Promise.all([
        import('../layout/archive.js'), import('../fetch.js'), import('./archive-name.js'), import('../artifact/config.js'),
      ]);
      const opened = await openArchive(archive!);
      try {
        const { sourceRef, name } = await archiveImage(opened.layout, archive!);
        const ref = parseReference(requireName(name, archive!));
        // An archive of one build is loaded for the triple it records (one packed on Linux for
        // Windows, say); --target and the usual choice are for multi-target archives and unrecorded ones.
        const triple = values.target !== undefined ? selectTriple(values.target) : ((await recordedTarget(opened.layout, sourceRef, archive!)) ?? selectTriple());
        if (!values.force) {
          const existing = await resolvePackage(canonicalReference(ref), { target: triple, offline: true }).catch(() => undefined);
          if (existing) throw new OcipkgError('EINPUT', `${canonicalReference(ref)} is already in the store (use -f to replace it)`);
        }
        // What the archive requires comes from registries, as `get` would fetch it.
        const requirementNames = requirementNamesWithin({ target: triple, progress, beforeFetch: tuneForTransfers }, [canonicalReference(ref)]);
        const pkg = await installImage({ source: opened.layout, tagOrDigest: sourceRef, recordAs: ref, triple, storeRoot: storeRoot(), progress, requirementNames });
        // The name now in the store, as `docker load` says which image it loaded.
        process.stderr.write(`ocipkg: loaded ${canonicalReference(ref)} (${pkg.manifestDigest})\n`);
        out(pkg.root);
      } finally {
        await opened.close();
      }
    },
  },
  'image-directory': {
    usage: 'ocipkg image-directory IMAGE [--target TRIPLE]',
    summary: "print the directory of an image's files in the store (fetching it if needed)",
    options: '  --target TRIPLE         target triple\n  --offline               use only the store (as OCIPKG_OFFLINE=1 does)',
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { target: { type: 'string' }, offline: { type: 'boolean' } }, 'image-directory');
      const [image] = positionals(pos, 1, 1, 'image-directory');
      const pkg = await resolvePackage(image!, { offline: values.offline, progress, beforeFetch: tuneForTransfers, ...(values.target !== undefined && { target: values.target }) });
      out(pkg.root);
    },
  },
  install: { usage: INSTALL_USAGE, summary: INSTALL_SUMMARY, options: INSTALL_OPTIONS, run: runInstall },
  update: { usage: UPDATE_USAGE, summary: UPDATE_SUMMARY, options: UPDATE_OPTIONS, run: runUpdate },
  outdated: { usage: OUTDATED_USAGE, summary: OUTDATED_SUMMARY, options: OUTDATED_OPTIONS, run: async (args) => (await import('./outdated.js')).runOutdated(args) },
  list: {
    usage: 'ocipkg list [--json]',
    summary: 'the same as `ocipkg store list`',
    options: '  --json                  one JSON array instead of lines',
    run: async (args) => (await import('./maintenance.js')).runList(args, 'list'),
  },
  rm: {
    usage: 'ocipkg rm IMAGE... [--json]',
    summary: 'remove references from the local store, and at once the packages and blobs only they needed',
    options: '  --json                  one JSON object instead of lines',
    run: async (args) => (await import('./maintenance.js')).runRemove(args, 'rm'),
  },
  inspect: {
    usage: 'ocipkg inspect ARCHIVE|IMAGE',
    summary: 'print the manifest (or index) and ocipkg config of an archive or image as JSON',
    options: '',
    async run(args) {
      const { positionals: pos } = parseOptions(args, {}, 'inspect');
      const [what] = positionals(pos, 1, 1, 'inspect');
      const { inspect } = await import('./inspect.js');
      printJson(await inspect(what!));
    },
  },
  store: {
    usage: 'ocipkg store list|prune|verify [options]',
    summary: 'the local store: `store list` shows what it holds, `store prune` removes what nothing needs, `store verify` re-hashes and checks it',
    options: [
      '  list [--json]           one line per reference and target: reference, target, manifest, size on disk,',
      '                          when fetched, when last used (tab-separated; `-` for none)',
      '  prune [--dry-run] [--min-age AGE] [--json]',
      '                          remove packages that no lockfile of a project where `ocipkg install` ran pins',
      '                          and that were not used within AGE, the references to them, unused blobs and',
      '                          abandoned downloads (AGE: minutes, or 12h, 30d; default 10 minutes: it may be',
      '                          a fetch in progress; 0 keeps only what lockfiles pin)',
      '  verify [--fix] [--json] re-hash every blob and check every package\'s files against its layers',
      '                          (--fix: remove what is corrupt, and the references to it)',
    ].join('\n'),
    async run(args) {
      const [sub, ...rest] = args;
      const { runList, runPrune, runVerify } = await import('./maintenance.js');
      if (sub === 'list') return runList(rest, 'store list');
      if (sub === 'prune') return runPrune(rest, 'store prune');
      if (sub === 'verify') return runVerify(rest, 'store verify');
      throw usageError(`store: expected \`list\`, \`prune\` or \`verify\`, got ${sub === undefined ? 'nothing' : `"${sub}"`} (usage: ${COMMANDS.store!.usage})`);
    },
  },
  prune: {
    usage: 'ocipkg prune [--dry-run] [--min-age AGE] [--json]',
    summary: 'the same as `ocipkg store prune`',
    options: '  --dry-run               list what would be removed, remove nothing\n  --min-age AGE           keep what was used within AGE (minutes, or 12h, 30d; default 10; 0 keeps only lockfile pins)\n  --json                  one JSON object instead of lines',
    run: async (args) => (await import('./maintenance.js')).runPrune(args, 'prune'),
  },
  target: {
    usage: 'ocipkg target [NAME]',
    summary: 'print the target triple NAME stands for (a triple or a Node-style name such as linux-arm64), or the one get resolves for here',
    options: '',
    async run(args) {
      const [name] = positionals(parseOptions(args, {}, 'target').positionals, 0, 1, 'target');
      out(selectTriple(name));
    },
  },
  'cmake-dir': {
    usage: 'ocipkg cmake-dir',
    summary: 'print the directory of the CMake package, for cmake -Docipkg_DIR="$(ocipkg cmake-dir)"',
    options: '',
    async run(args) {
      positionals(parseOptions(args, {}, 'cmake-dir').positionals, 0, 0, 'cmake-dir');
      out(fileURLToPath(new URL('../../cmake', import.meta.url)));
    },
  },
  'generate-key-pair': { usage: GENERATE_KEY_PAIR_USAGE, summary: GENERATE_KEY_PAIR_SUMMARY, options: GENERATE_KEY_PAIR_OPTIONS, run: async (args) => (await import('./keys.js')).runGenerateKeyPair(args) },
  sign: { usage: SIGN_USAGE, summary: SIGN_SUMMARY, options: SIGN_OPTIONS, run: async (args) => (await import('./sign.js')).runSign(args) },
  verify: { usage: VERIFY_USAGE, summary: VERIFY_SUMMARY, options: VERIFY_OPTIONS, run: async (args) => (await import('./sign.js')).runVerify(args) },
  copy: { usage: COPY_USAGE, summary: COPY_SUMMARY, options: COPY_OPTIONS, run: async (args) => (await import('./copy.js')).runCopy(args) },
  login: {
    usage: 'ocipkg login REGISTRY -u USER (-p PASSWORD | --password-stdin)',
    summary: "check credentials against a registry and save them in ocipkg's auth file (mode 0600)",
    options: '  -u, --username USER\n  -p, --password PASSWORD\n  --password-stdin        read the password from standard input',
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { username: { type: 'string', short: 'u' }, password: { type: 'string', short: 'p' }, 'password-stdin': { type: 'boolean' } }, 'login');
      const [registry] = positionals(pos, 1, 1, 'login');
      if (!values.username) throw usageError('login: -u USER is required');
      if ((values.password === undefined) === !values['password-stdin']) throw usageError('login: give exactly one of -p PASSWORD or --password-stdin');
      const password = values.password ?? (await readStdin()).replace(/\r?\n$/, '');
      const { login } = await import('../registry/login.js');
      await login(registry!, values.username, password);
      process.stderr.write(`Login succeeded for ${registry}\n`);
    },
  },
  logout: {
    usage: 'ocipkg logout REGISTRY',
    summary: "remove a registry's credentials from ocipkg's auth file",
    options: '',
    async run(args) {
      const { positionals: pos } = parseOptions(args, {}, 'logout');
      const [registry] = positionals(pos, 1, 1, 'logout');
      const { logout } = await import('../registry/login.js');
      await logout(registry!);
    },
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function globalHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: ocipkg <command> [options]',
    '',
    'Prebuilt C/C++ libraries for Node native addons, through any OCI registry.',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `ocipkg <command> --help` for its options. Global: --verbose (stack traces), --version.',
    `Store: ${storeRoot()} (set OCIPKG_DATA_DIR to move it).`,
  ].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  await runMain('ocipkg', argv, async () => {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      out(globalHelp());
      return;
    }
    if (name === '--version' || name === '-V') {
      out(version());
      return;
    }
    const command = COMMANDS[name];
    if (!command) throw usageError(`unknown command "${name}" (run \`ocipkg --help\` for the list)`);
    if (rest.includes('--help') || rest.includes('-h')) {
      out(`usage: ${command.usage}\n\n${command.summary}${command.options ? `\n\noptions:\n${command.options}` : ''}`);
      return;
    }
    await command.run(rest);
  });
}
