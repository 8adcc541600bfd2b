import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const tuning = join(import.meta.dirname, '..', 'dist', 'tuning.js');

/**
 * Peak buffer memory (MiB) of a process that churns through 256 MiB of 64 KiB buffers, each dead as
 * soon as the next is made, reporting each to noteBufferChurn as extraction does.
 */
function peakWhileChurning(tuned: boolean): number {
  const script = `
    const { tuneForTransfers, noteBufferChurn } = await import(${JSON.stringify(tuning)});
    if (${tuned}) tuneForTransfers();
    let peak = 0;
    for (let i = 0; i < 4096; i++) {
      const chunk = Buffer.allocUnsafe(65536);
      chunk[0] = i;
      noteBufferChurn(chunk.length);
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    process.stdout.write(String(peak / 1048576));`;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
}

describe('buffer collection during transfers', () => {
  it('keeps dead buffers near the 8 MiB limit once a CLI tuned the process, where V8 alone lets them pile up', () => {
    const tuned = peakWhileChurning(true);
    const untuned = peakWhileChurning(false);
    expect(tuned).toBeLessThan(12);
    expect(untuned).toBeGreaterThan(16);
  });
});
