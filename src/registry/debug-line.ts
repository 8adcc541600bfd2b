/**
 * One line on stderr under the CLIs' `--verbose` (or OCIPKG_DEBUG=1): which endpoint served a pull,
 * which repository a blob was mounted from. Read from the process, because this layer sits below the
 * CLIs and serves every command, so asking the process saves threading a flag through each.
 */
export function debugLine(line: string): void {
  if (process.env.OCIPKG_DEBUG === '1' || process.argv.includes('--verbose')) process.stderr.write(`ocipkg: ${line}\n`);
}
