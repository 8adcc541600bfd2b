import type { OcipkgError } from '../errors.js';

/** Questions on the terminal (stdin a TTY, prompts on stderr): passwords, confirmations, user names. */

/** Reads a line from the terminal without echoing it (raw mode: the terminal driver echoes nothing). */
export function readHidden(prompt: string, cancelled: () => OcipkgError): Promise<string> {
  const stdin = process.stdin;
  // Raw before the prompt shows: what is typed as soon as it appears must not be echoed.
  stdin.setRawMode(true);
  process.stderr.write(prompt);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed: string[] = [];
    const finish = (wasCancelled: boolean) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (wasCancelled) reject(cancelled());
      else resolve(typed.join(''));
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') return finish(false);
        // Raw mode turns Ctrl-C and Ctrl-D into plain characters.
        if (char === '\u0003' || char === '\u0004') return finish(true);
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else typed.push(char);
      }
    };
    stdin.on('data', onData);
  });
}

/** One line typed on the terminal. readline is loaded only to ask: every `ocipkg` command loads the modules that may. */
export async function askLine(question: string): Promise<string> {
  // getBuiltinModule, not import(): the CLI runs as a script compiled by vm, which cannot import().
  const { createInterface } = process.getBuiltinModule('node:readline/promises');
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return await prompt.question(question);
  } finally {
    prompt.close();
  }
}
