import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { packageFetchesAtOnce } from '../concurrency.js';
import { EXIT_STATUSES, OcipkgError } from '../errors.js';
import { archivePath, canonicalReference, formatReference, parseReference, repositoryOf } from '../reference.js';
import { requirementNamesWithin, resolvePackage } from '../resolve.js';
import { storeRoot } from '../store/paths.js';
import type { TagMove } from '../store/refs.js';
import { selectTriple } from '../triple.js';
import { GLOBAL_HELP, JSON_HELP, JSON_OPTION, parseOptions, printJson, printLine, progress, readStdin, runMain, sizeThreadPool, usageError } from './common.js';
import { didYouMean } from '../suggest.js';
import { beforeTransfers, copiedLine } from './transfers.js';
import type { InstalledPackage } from '../store/package.js';
import type { PackResult } from '../package/pack.js';
import { PACK_METADATA_HELP, PACK_METADATA_OPTIONS, packMetadata } from './pack-options.js';
import { ADD_OPTIONS, ADD_SUMMARY, ADD_USAGE, runAdd, INSTALL_OPTIONS, INSTALL_SUMMARY, INSTALL_USAGE, runInstall, runUpdate, UPDATE_OPTIONS, UPDATE_SUMMARY, UPDATE_USAGE } from './project.js';
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
  /** How many transfers the command runs side by side (default one); see sizeThreadPool. */
  transfersAtOnce?: () => number;
}

const out = printLine;

function positionals(values: string[], min: number, max: number, command: string): string[] {
  if (values.length < min) throw usageError(`${command}: missing argument (usage: ${COMMANDS[command]!.usage})`);
  if (values.length > max) throw usageError(`${command}: unexpected argument "${values[max]}" (usage: ${COMMANDS[command]!.usage})`);
  return values;
}

/** What `get`, `image-directory` and `load` print under --json: the package and where it lies. */
function packageResult(reference: string, pkg: InstalledPackage): Record<string, unknown> {
  return { reference, target: pkg.target ?? null, manifestDigest: pkg.manifestDigest, name: pkg.config.package?.name ?? null, version: pkg.config.package?.version ?? null, dir: pkg.dir, root: pkg.root };
}

/** What `pack` and `compose` print under --json. */
function archiveResult(archive: string, result: PackResult): Record<string, unknown> {
  return { archive, reference: result.refName, manifestDigest: result.manifestDigest, layer: result.layer, target: result.config.package?.target ?? null };
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
      JSON_HELP,
    ].join('\n'),
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, {
        tag: { type: 'string', short: 't' }, target: { type: 'string' }, 'cmake-targets': { type: 'string' }, ...PACK_METADATA_OPTIONS, ...JSON_OPTION,
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
      if (values.json) printJson(archiveResult(output!, result));
      else out(result.manifestDigest);
    },
  },
  compose: {
    usage: 'ocipkg compose FILE... -o OUTPUT -t IMAGE',
    summary: 'pack individual files (placed at the package root) into an oci-archive',
    options: `  -o, --output OUTPUT     archive to write (required)\n  -t, --tag IMAGE         image name recorded in the archive (required)\n${JSON_HELP}`,
    async run(args) {
      const { values, positionals: files } = parseOptions(args, { output: { type: 'string', short: 'o' }, tag: { type: 'string', short: 't' }, ...JSON_OPTION }, 'compose');
      positionals(files, 1, Infinity, 'compose');
      if (!values.output) throw usageError('compose: -o OUTPUT is required');
      if (!values.tag) throw usageError('compose: -t IMAGE is required');
      const image = canonicalReference(parseReference(values.tag));
      const { compose } = await import('../package/compose.js');
      const result = await compose(files, values.output, { image });
      if (values.json) printJson(archiveResult(values.output, result));
      else out(result.manifestDigest);
    },
  },
  push: {
    usage: 'ocipkg push ARCHIVE [IMAGE] [--json]',
    summary: 'push an oci-archive to a registry (or oci:DIR), under IMAGE or the name it records',
    options: JSON_HELP,
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { ...JSON_OPTION }, 'push');
      const [given, image] = positionals(pos, 1, 2, 'push');
      const archive = archivePath(given!);
      assertArchive(archive);
      await beforeTransfers('pushing');
      const [{ openArchive }, { copy }, { openContent }, { archiveImage, requireName }] = await Promise.all([
        import('../layout/archive.js'), import('../copy.js'), import('../open.js'), import('./archive-name.js'),
      ]);
      const opened = await openArchive(archive!);
      try {
        const { sourceRef, name } = await archiveImage(opened.layout, archive!);
        const dest = parseReference(image ?? requireName(name, archive!));
        progress(`pushing ${archive} to ${canonicalReference(dest)}`);
        const pushed = await copy(opened.layout, sourceRef, openContent(dest), dest.tag ?? (dest.digest ? undefined : 'latest'), {
          onCopied: (desc, skipped) => progress(copiedLine(desc, skipped)),
        });
        // The pinned form: what a lockfile or a careful consumer should reference.
        const { tag: _tag, ...untagged } = dest;
        const pinned = formatReference({ ...untagged, digest: pushed.digest });
        if (values.json) printJson({ reference: pinned, tagged: canonicalReference(dest), ...pushed });
        else out(pinned);
      } finally {
        await opened.close();
      }
    },
  },
  publish: { usage: PUBLISH_USAGE, summary: PUBLISH_SUMMARY, options: PUBLISH_OPTIONS, run: runPublish },
  get: {
    usage: 'ocipkg get IMAGE [-f] [--target TRIPLE] [--json]',
    summary: 'fetch an image into the local store and print its directory; a tag is looked up again each time, as `docker pull` does',
    options: `  -f, --force             fetch again even if the store has it (a digest or lockfile pin too)\n  --target TRIPLE         target triple (default: npm_config_arch for a cross build, then OCIPKG_TARGET, then the host)\n  --offline               use only the store, never asking where a tag points now (as OCIPKG_OFFLINE=1 does)\n${JSON_HELP}`,
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { force: { type: 'boolean', short: 'f' }, target: { type: 'string' }, offline: { type: 'boolean' }, ...JSON_OPTION }, 'get');
      const [image] = positionals(pos, 1, 1, 'get');
      const moved = (move: TagMove) => void process.stderr.write(`ocipkg: ${move.image} has moved from ${move.from} to ${move.to}\n`);
      const pkg = await resolvePackage(image!, { force: values.force ?? false, refresh: true, moved, offline: values.offline, progress, beforeFetch: () => beforeTransfers('fetching'), ...(values.target !== undefined && { target: values.target }) });
      if (values.json) printJson(packageResult(image!, pkg));
      else out(pkg.root);
    },
  },
  load: {
    usage: 'ocipkg load ARCHIVE [--target TRIPLE] [--json]',
    summary: 'load an oci-archive into the local store under the name it records (replacing what the name pointed at, as docker load does)',
    options: `  --target TRIPLE         for a multi-target archive, the build to load (default: the triple a\n                          single-target archive records)\n  -f, --force             accepted for scripts written when a second load needed it\n${JSON_HELP}`,
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { force: { type: 'boolean', short: 'f' }, target: { type: 'string' }, ...JSON_OPTION }, 'load');
      const [given] = positionals(pos, 1, 1, 'load');
      const archive = archivePath(given!);
      assertArchive(archive);
      await beforeTransfers('loading');
      const [{ openArchive }, { installImage }, { archiveImage, requireName }, { recordedTarget }] = await Promise.all([
        import('../layout/archive.js'), import('../fetch.js'), import('./archive-name.js'), import('../artifact/config.js'),
      ]);
      const opened = await openArchive(archive);
      try {
        const { sourceRef, name } = await archiveImage(opened.layout, archive);
        const ref = parseReference(requireName(name, archive));
        // An archive of one build is loaded for the triple it records (one packed on Linux for
        // Windows, say); --target and the usual choice are for multi-target archives and unrecorded ones.
        const triple = values.target !== undefined ? selectTriple(values.target) : ((await recordedTarget(opened.layout, sourceRef, archive)) ?? selectTriple());
        const before = await resolvePackage(canonicalReference(ref), { target: triple, offline: true }).catch(() => undefined);
        // What the archive requires comes from registries, as `get` would fetch it.
        const requirementNames = requirementNamesWithin({ target: triple, progress, beforeFetch: () => beforeTransfers('fetching') }, [canonicalReference(ref)]);
        const pkg = await installImage({ source: opened.layout, tagOrDigest: sourceRef, recordAs: ref, triple, storeRoot: storeRoot(), progress, requirementNames });
        // The name now in the store, as `docker load` says which image it loaded.
        const was = before === undefined ? '' : before.manifestDigest === pkg.manifestDigest ? ', already in the store' : `, replacing ${before.manifestDigest}`;
        process.stderr.write(`ocipkg: loaded ${canonicalReference(ref)} (${pkg.manifestDigest}${was})\n`);
        if (values.json) printJson({ ...packageResult(canonicalReference(ref), pkg), replaced: before && before.manifestDigest !== pkg.manifestDigest ? before.manifestDigest : null });
        else out(pkg.root);
      } finally {
        await opened.close();
      }
    },
  },
  'image-directory': {
    usage: 'ocipkg image-directory IMAGE [--target TRIPLE] [--json]',
    summary: "print the directory of an image's files in the store (fetching it if needed)",
    options: `  --target TRIPLE         target triple\n  --offline               use only the store (as OCIPKG_OFFLINE=1 does)\n${JSON_HELP}`,
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { target: { type: 'string' }, offline: { type: 'boolean' }, ...JSON_OPTION }, 'image-directory');
      const [image] = positionals(pos, 1, 1, 'image-directory');
      const pkg = await resolvePackage(image!, { offline: values.offline, progress, beforeFetch: () => beforeTransfers('fetching'), ...(values.target !== undefined && { target: values.target }) });
      if (values.json) printJson(packageResult(image!, pkg));
      else out(pkg.root);
    },
  },
  install: { usage: INSTALL_USAGE, summary: INSTALL_SUMMARY, options: INSTALL_OPTIONS, run: runInstall, transfersAtOnce: packageFetchesAtOnce },
  update: { usage: UPDATE_USAGE, summary: UPDATE_SUMMARY, options: UPDATE_OPTIONS, run: runUpdate, transfersAtOnce: packageFetchesAtOnce },
  add: { usage: ADD_USAGE, summary: ADD_SUMMARY, options: ADD_OPTIONS, run: runAdd },
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
    usage: 'ocipkg inspect ARCHIVE|IMAGE [--target TRIPLE]',
    summary: 'print the manifest (or index) and ocipkg config of an archive or image as JSON',
    options: `  --target TRIPLE         for an index, the manifest and config of this target's build\n  --json                  accepted: the output is always JSON`,
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { target: { type: 'string' }, ...JSON_OPTION }, 'inspect');
      const [what] = positionals(pos, 1, 1, 'inspect');
      const { inspect } = await import('./inspect.js');
      printJson(await inspect(what!, values.target !== undefined ? selectTriple(values.target) : undefined));
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
      out(join(import.meta.dirname, '..', '..', 'cmake'));
    },
  },
  'generate-key-pair': { usage: GENERATE_KEY_PAIR_USAGE, summary: GENERATE_KEY_PAIR_SUMMARY, options: GENERATE_KEY_PAIR_OPTIONS, run: async (args) => (await import('./keys.js')).runGenerateKeyPair(args) },
  sign: { usage: SIGN_USAGE, summary: SIGN_SUMMARY, options: SIGN_OPTIONS, run: async (args) => (await import('./sign.js')).runSign(args) },
  verify: { usage: VERIFY_USAGE, summary: VERIFY_SUMMARY, options: VERIFY_OPTIONS, run: async (args) => (await import('./sign.js')).runVerify(args) },
  copy: { usage: COPY_USAGE, summary: COPY_SUMMARY, options: COPY_OPTIONS, run: async (args) => (await import('./copy.js')).runCopy(args) },
  tags: {
    usage: 'ocipkg tags REPOSITORY [--json]',
    summary: 'list the tags of a registry repository (or an oci: layout), one per line',
    options: JSON_HELP,
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { ...JSON_OPTION }, 'tags');
      const [repository] = positionals(pos, 1, 1, 'tags');
      const ref = parseReference(repository!);
      if (ref.tag !== undefined || ref.digest !== undefined) throw usageError(`tags: "${repository}" names ${ref.digest ? 'a digest' : 'a tag'}; give the repository alone`);
      let tags: string[];
      if (ref.kind === 'oci') {
        const { LayoutDirectory } = await import('../layout/directory.js');
        tags = (await new LayoutDirectory(ref.path).listRefs()).map((r) => r.name);
      } else {
        const { listTags } = await import('../registry/tags.js');
        tags = await listTags(ref.registry, ref.repository);
      }
      if (values.json) printJson({ repository: repositoryOf(ref), tags });
      else for (const tag of tags) out(tag);
    },
  },
  login: {
    usage: 'ocipkg login REGISTRY [-u USER] [-p PASSWORD | --password-stdin] [--json]',
    summary: 'check credentials against a registry and save them (a configured credential helper, else ocipkg\'s auth file, mode 0600)',
    options: [
      '  -u, --username USER     asked for on a terminal when not given',
      '  -p, --password PASSWORD',
      '  --password-stdin        read the password from standard input',
      '                          (neither: asked for on a terminal, without echo)',
      JSON_HELP,
    ].join('\n'),
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { username: { type: 'string', short: 'u' }, password: { type: 'string', short: 'p' }, 'password-stdin': { type: 'boolean' }, ...JSON_OPTION }, 'login');
      const [registry] = positionals(pos, 1, 1, 'login');
      if (values.password !== undefined && values['password-stdin']) throw usageError('login: give one of -p PASSWORD or --password-stdin, not both');
      const terminal = process.stdin.isTTY === true;
      const { askLine, readHidden } = await import('./prompt.js');
      const username = values.username ?? (terminal && !values['password-stdin'] ? (await askLine('Username: ')).trim() : undefined);
      if (!username) throw usageError('login: -u USER is required (there is no terminal to ask on)');
      let password = values.password;
      if (values['password-stdin']) password = (await readStdin()).replace(/\r?\n$/, '');
      else if (password === undefined) {
        if (!terminal) throw usageError('login: give -p PASSWORD or --password-stdin (there is no terminal to ask on)');
        password = await readHidden('Password: ', () => usageError('login: no password given'));
      }
      const { login } = await import('../registry/login.js');
      const result = await login(registry!, username, password);
      if (values.json) printJson({ ...result, username });
      process.stderr.write(`Login succeeded for ${result.registry} (credentials in ${result.storedIn})\n`);
    },
  },
  logout: {
    usage: 'ocipkg logout REGISTRY [--json]',
    summary: "remove a registry's credentials from ocipkg's auth file and its configured credential helper (not being logged in is no error)",
    options: JSON_HELP,
    async run(args) {
      const { values, positionals: pos } = parseOptions(args, { ...JSON_OPTION }, 'logout');
      const [registry] = positionals(pos, 1, 1, 'logout');
      const { logout } = await import('../registry/login.js');
      const result = await logout(registry!);
      if (values.json) printJson(result);
      process.stderr.write(result.removedFrom.length > 0 ? `Removed the credentials for ${result.registry} from ${result.removedFrom.join(' and ')}\n` : `Not logged in to ${result.registry}\n`);
    },
  },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function exitStatusHelp(): string {
  return [
    '  0  success',
    '  1  any failure of no kind below',
    ...EXIT_STATUSES.map((row) => `  ${row.status}  ${row.meaning}`),
  ].join('\n');
}

function globalHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: ocipkg [global options] <command> [options]',
    '',
    'Prebuilt C/C++ libraries for Node native addons, through any OCI registry.',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'global options (before or after the command):',
    GLOBAL_HELP,
    '  -v, --version           print the version (also `ocipkg version`)',
    '',
    'exit status:',
    exitStatusHelp(),
    '',
    'Run `ocipkg help <command>` (or `ocipkg <command> --help`) for its options.',
    `Store: ${storeRoot()} (set OCIPKG_DATA_DIR to move it).`,
  ].join('\n');
}

function commandHelp(command: Command): string {
  return `usage: ${command.usage}\n\n${command.summary}${command.options ? `\n\noptions:\n${command.options}` : ''}\n\nglobal options:\n${GLOBAL_HELP}`;
}

/** A command by name, or a usage error that suggests the nearest one. */
function findCommand(name: string): Command {
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw usageError(`unknown command "${name}"${didYouMean(name, [...Object.keys(COMMANDS), 'help', 'version'])} (run \`ocipkg --help\` for the list)`);
  return command;
}

/** Global flags that take no value, as they may be written before the command. */
const LEADING_FLAGS = new Set(['--verbose', '--quiet', '-q', '--plain-http', '--json']);

export async function main(argv: string[]): Promise<void> {
  await runMain('ocipkg', argv, async () => {
    // Options written before the command are global: moved after it, where every command takes them.
    let first = 0;
    while (first < argv.length && argv[first]!.startsWith('-') && argv[first] !== '-') {
      const flag = argv[first]!;
      if (flag === '--help' || flag === '-h') return out(globalHelp());
      if (flag === '--version' || flag === '-v' || flag === '-V') return out(version());
      if (!LEADING_FLAGS.has(flag) && !flag.startsWith('--tls-verify')) {
        const known = [...LEADING_FLAGS, '--tls-verify', '--help', '--version'].filter((f) => f.startsWith('--'));
        throw usageError(`unknown global option '${flag}'${didYouMean(flag, known, (f) => `'${f}'`)} (run \`ocipkg --help\`)`);
      }
      first++;
    }
    const globals = argv.slice(0, first);
    const [name, ...after] = argv.slice(first);
    if (name === undefined) {
      // As git and npm: the help, and a failure, for a script that forgot its command.
      process.stderr.write(`${globalHelp()}\n`);
      process.exitCode = 1;
      return;
    }
    if (name === 'version') {
      if (after.includes('--json')) return printJson({ version: version() });
      if (after.length > 0) throw usageError(`version: unexpected argument "${after[0]}" (usage: ocipkg version [--json])`);
      return out(version());
    }
    if (name === 'help') {
      const [topic, ...extra] = after;
      if (topic === undefined || topic === '--help' || topic === '-h') return out(globalHelp());
      if (extra.length > 0) throw usageError(`help: expected one command, got ${after.length}`);
      return out(commandHelp(findCommand(topic)));
    }
    const command = findCommand(name);
    // Before a `--`, which ends the options; at the end otherwise, after a subcommand (`store prune`).
    const dashes = after.indexOf('--');
    const rest = dashes === -1 ? [...after, ...globals] : [...after.slice(0, dashes), ...globals, ...after.slice(dashes)];
    const options = dashes === -1 ? rest : rest.slice(0, dashes + globals.length);
    if (options.includes('--help') || options.includes('-h')) return out(commandHelp(command));
    sizeThreadPool(command.transfersAtOnce?.() ?? 1);
    await command.run(rest);
  });
}
