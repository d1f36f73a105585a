/**
 * What a child process is doing, read from Linux's `/proc/<pid>/`, so that
 * a test can wait for a child to reach a state (a stop handler in place, a
 * thread blocked in the kernel) instead of sleeping while it starts up.
 *
 * @module
 */

/** Linux signal numbers of the stop signals the tests send. */
const SIGNAL_NUMBERS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGTERM: 15,
};

/**
 * Calls `probe` every 5 ms until it returns true, bounded.
 *
 * @param probe The condition.
 * @param timeoutMs How long to keep trying.
 * @param what Names the condition in the error.
 */
export async function pollUntil(
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Whether process `pid` has a handler for `signal` (its bit in `SigCgt`).
 *
 * @param pid The process.
 * @param signal One of SIGHUP, SIGINT, SIGQUIT, SIGTERM.
 * @returns Whether the signal is caught; false once the process is gone.
 */
export function catchesSignal(pid: number, signal: Deno.Signal): boolean {
  const number = SIGNAL_NUMBERS[signal];
  if (number === undefined) throw new RangeError(`No number for ${signal}`);
  let status: string;
  try {
    status = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return false;
  }
  const mask = status.match(/^SigCgt:\s*([0-9a-f]+)$/m)?.[1];
  return mask !== undefined &&
    ((BigInt(`0x${mask}`) >> BigInt(number - 1)) & 1n) === 1n;
}

/**
 * Waits until process `pid` catches `signal`: sent before that, the signal
 * kills it by its default action instead of reaching its handler.
 *
 * @param pid The process.
 * @param signal The signal.
 * @param timeoutMs How long to wait.
 */
export async function waitForSignalHandler(
  pid: number,
  signal: Deno.Signal,
  timeoutMs = 10_000,
): Promise<void> {
  await pollUntil(
    () => catchesSignal(pid, signal),
    timeoutMs,
    `process ${pid} to catch ${signal}`,
  );
}

/**
 * Waits until a thread of process `pid` sleeps in the kernel function
 * `wchan` (its `/proc/<pid>/task/<tid>/wchan`), for example
 * `wait_for_partner` while it opens a FIFO that has no writer.
 *
 * @param pid The process.
 * @param wchan The kernel function.
 * @param timeoutMs How long to wait.
 */
export async function waitForThreadIn(
  pid: number,
  wchan: string,
  timeoutMs = 10_000,
): Promise<void> {
  const sleepsThere = () => {
    try {
      for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
        const path = `/proc/${pid}/task/${task.name}/wchan`;
        if (Deno.readTextFileSync(path).trim() === wchan) return true;
      }
    } catch {
      // gone, or a thread ended while listed: look again
    }
    return false;
  };
  await pollUntil(sleepsThere, timeoutMs, `a thread of ${pid} in ${wchan}`);
}

/**
 * The peak resident set size of process `pid` so far (`VmHWM`).
 *
 * @param pid The process (still running).
 * @returns KiB.
 */
export function peakRssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = status.match(/VmHWM:\s+(\d+) kB/)?.[1];
  if (kib === undefined) throw new Error(`no VmHWM for process ${pid}`);
  return Number(kib);
}
