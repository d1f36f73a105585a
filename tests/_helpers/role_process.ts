/**
 * Spawns one of the four executables as a real process and reads its output
 * line by line, for end-to-end tests.
 *
 * @module
 */

import { type RoleExecutable, roleRunFlags } from "../../bench/build.ts";

/**
 * The flags an executable runs with after `deno run` (the same as the
 * dist/ launchers and the deno tasks).
 */
export { roleRunFlags as roleFlags };

const ROOT = new URL("../../", import.meta.url);

/** Which executable to start. */
export type RoleName = RoleExecutable;

/** Options of {@linkcode startRole}. */
export interface StartRoleOptions {
  /** Working directory of the process (default: the project root). */
  cwd?: string;
  /** Whether the test writes to stdin (default false: stdin is /dev/null). */
  stdin?: boolean;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Most open file descriptors the process may have (`ulimit -n`). */
  fdLimit?: number;
}

/** Collects a byte stream as text and lets a test wait for a line. */
export class LineCollector {
  /** Everything received so far, decoded. */
  text = "";
  #waiters: Array<() => void> = [];
  #done = false;
  /** Resolves when the stream ended. */
  readonly finished: Promise<void>;

  /**
   * Creates the instance.
   *
   * @param stream The stream to collect.
   */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.finished = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        this.text += decoder.decode(chunk, { stream: true });
        this.#wake();
        await this.#paused;
      }
      this.text += decoder.decode();
      this.#done = true;
      this.#wake();
    })();
  }

  #paused?: Promise<void>;
  #resume?: () => void;

  /**
   * Stops reading after the chunk being read (a reader that does not keep
   * up: the process's pipe fills); {@linkcode LineCollector.resume} reads on.
   */
  pause(): void {
    this.#paused ??= new Promise((resolve) => this.#resume = resolve);
  }

  /** Reads on after {@linkcode LineCollector.pause}. */
  resume(): void {
    this.#resume?.();
    this.#paused = this.#resume = undefined;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Complete lines received so far. */
  get lines(): string[] {
    const lines = this.text.split("\n");
    lines.pop();
    return lines;
  }

  /**
   * Waits until the text matches `pattern`.
   *
   * @param pattern What to wait for.
   * @param timeoutMs How long to wait.
   * @returns The match.
   */
  async waitFor(
    pattern: RegExp | string,
    timeoutMs = 10_000,
  ): Promise<RegExpMatchArray> {
    const regex = typeof pattern === "string"
      ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      : pattern;
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const match = this.text.match(regex);
      if (match) return match;
      if (this.#done) {
        throw new Error(
          `Stream ended without ${regex}; got:\n${this.text}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`Timed out waiting for ${regex}; got:\n${this.text}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }
}

/** A running executable; `await using` kills it and awaits its exit. */
export class RoleProcess implements AsyncDisposable {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** Its stdout. */
  readonly stdout: LineCollector;
  /** Its stderr. */
  readonly stderr: LineCollector;
  #stdin?: WritableStreamDefaultWriter<Uint8Array>;

  /**
   * Creates the instance.
   *
   * @param child A child spawned with piped stdout and stderr.
   * @param piped Whether its stdin is piped.
   */
  constructor(child: Deno.ChildProcess, piped: boolean) {
    this.child = child;
    this.stdout = new LineCollector(child.stdout);
    this.stderr = new LineCollector(child.stderr);
    if (piped) this.#stdin = child.stdin.getWriter();
  }

  /**
   * Writes text to the process's stdin.
   *
   * @param text What to type.
   */
  async write(text: string): Promise<void> {
    if (!this.#stdin) throw new Error("stdin is not piped");
    await this.#stdin.write(new TextEncoder().encode(text));
  }

  /** Closes stdin (end of input). */
  async closeStdin(): Promise<void> {
    if (!this.#stdin) return;
    const writer = this.#stdin;
    this.#stdin = undefined;
    await writer.close().catch(() => {});
  }

  /**
   * Waits for the process to exit, with everything it printed.
   *
   * @param timeoutMs How long to wait before killing it.
   * @returns Exit status and output.
   */
  async finished(
    timeoutMs = 20_000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        try {
          this.child.kill("SIGKILL");
        } catch { /* gone */ }
        reject(new Error(`Process did not exit within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      const status = await Promise.race([this.child.status, timeout]);
      await Promise.all([this.stdout.finished, this.stderr.finished]);
      return {
        code: status.code,
        stdout: this.stdout.text,
        stderr: this.stderr.text,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends a signal (ignoring a process that is already gone).
   *
   * @param signal The signal.
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(signal);
    } catch {
      // already exited
    }
  }

  /** Kills the process and waits for it and its output streams. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stdout.resume();
    this.stderr.resume();
    await this.closeStdin();
    this.kill("SIGKILL");
    await this.child.status;
    await Promise.all([this.stdout.finished, this.stderr.finished]);
  }
}

/**
 * Starts an executable (`roles/<name>/main.ts`) with the dist/ permissions.
 *
 * @param name Which executable.
 * @param args Its arguments.
 * @param options Working directory, stdin, environment.
 * @returns The running process.
 */
export function startRole(
  name: RoleName,
  args: string[],
  options: StartRoleOptions = {},
): RoleProcess {
  const main = new URL(`roles/${name}/main.ts`, ROOT);
  const command = [
    Deno.execPath(),
    "run",
    ...roleRunFlags(name),
    main.pathname,
    ...args,
  ];
  const limited = options.fdLimit !== undefined
    ? ["sh", "-c", `ulimit -n ${options.fdLimit} && exec "$@"`, "sh"]
    : [];
  const [program, ...programArgs] = [...limited, ...command];
  const child = new Deno.Command(program, {
    args: programArgs,
    cwd: options.cwd ?? ROOT.pathname,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...options.env },
  }).spawn();
  return new RoleProcess(child, options.stdin === true);
}

/**
 * Runs an executable to completion.
 *
 * @param name Which executable.
 * @param args Its arguments.
 * @param options Working directory, environment, and text for stdin.
 * @returns Exit status and output.
 */
export async function runRole(
  name: RoleName,
  args: string[],
  options: StartRoleOptions & { input?: string; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const role = startRole(name, args, {
    ...options,
    stdin: options.input !== undefined,
  });
  if (options.input !== undefined) {
    await role.write(options.input);
    await role.closeStdin();
  }
  return await role.finished(options.timeoutMs);
}
