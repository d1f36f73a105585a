/**
 * A TCP port on 127.0.0.1 that never completes a connection: a listener
 * with a backlog of 0 whose one queue slot is taken and which never
 * accepts, so the kernel drops every further SYN and a `connect` hangs
 * until its own timeout — the only way to test a connect timeout without
 * sending traffic off the machine. The listener is a tiny Python process
 * (`python3` is on every machine here; Deno cannot set a backlog).
 *
 * @module
 */

import { firstLine } from "./ports.ts";

const LISTENER = `import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()`;

/** A port whose connections never complete; dispose to release it. */
export class FullBacklogPort implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #filler: Deno.Conn;
  /** The port number. */
  readonly port: number;

  private constructor(
    child: Deno.ChildProcess,
    filler: Deno.Conn,
    port: number,
  ) {
    this.#child = child;
    this.#filler = filler;
    this.port = port;
  }

  /**
   * Starts the listener and fills its queue. A filler connection that is
   * reset (seen once in CI, under load) is retried with a new listener.
   *
   * @returns The port, ready.
   */
  static async start(): Promise<FullBacklogPort> {
    for (let attempt = 1;; attempt++) {
      const child = new Deno.Command("python3", {
        args: ["-c", LISTENER],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      try {
        const line = await firstLine(child.stdout);
        const port = Number(line);
        if (!port) throw new Error(`the listener did not start: ${line}`);
        // the one slot of a backlog of 0
        const filler = await Deno.connect({ hostname: "127.0.0.1", port });
        return new FullBacklogPort(child, filler, port);
      } catch (error) {
        await child.stdin.close().catch(() => {});
        await child.status;
        const retry = attempt < 3 &&
          (error instanceof Deno.errors.ConnectionReset ||
            error instanceof Deno.errors.ConnectionRefused);
        if (!retry) throw error;
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#filler.close();
    await this.#child.stdin.close().catch(() => {});
    await this.#child.status;
  }
}
