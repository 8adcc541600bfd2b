import { spawn } from 'node:child_process';

/**
 * Runs a command on a pseudo-terminal (Python's pty module: stdin, stdout and stderr are the
 * terminal, as in an interactive shell), answering prompts: each `send` is typed once everything
 * printed so far contains its `after`. Returns what the terminal showed and the exit status.
 */
const DRIVER = String.raw`
import json, os, pty, sys
argv, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2])
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
seen = b''
while True:
    while steps and steps[0]['after'].encode() in seen:
        os.write(fd, steps.pop(0)['send'].encode())
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(seen)
sys.exit(os.waitstatus_to_exitcode(status) & 0xff)
`;

export interface PtyResult {
  code: number | null;
  /** Everything the terminal showed (stdout and stderr together, as a terminal shows them). */
  screen: string;
}

export function runInPty(argv: string[], env: NodeJS.ProcessEnv, steps: { after: string; send: string }[] = []): Promise<PtyResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', DRIVER, JSON.stringify(argv), JSON.stringify(steps)], {
      env: { ...process.env, OCIPKG_DEBUG: '', TERM: 'xterm', COLUMNS: '120', LINES: '40', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen }));
  });
}
