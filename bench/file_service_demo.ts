/**
 * The file service end to end for `make demo`: the real origin `server`,
 * `cache` and `client` executables on 127.0.0.1, each in its own temporary
 * directory; the client puts a generated file, gets it (a miss: from the
 * origin) and gets it again (a hit: from the cache), then quits. The result
 * is the client's real transcript, the time and throughput of each step and
 * a SHA-256 check of every copy.
 *
 * Run alone: `deno run -A bench/file_service_demo.ts [tcp|snw] [MiB]`.
 *
 * @module
 */

import { join } from "node:path";
import { sha256File, writeTestFile } from "../tests/_helpers/files.ts";
import { type RoleProcess, startRole } from "../tests/_helpers/role_process.ts";

const MiB = 1024 * 1024;
const STEP_TIMEOUT_MS = 10 * 60_000;

function rate(bytes: number, ms: number): string {
  return `${(bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s`;
}

async function listeningPort(role: RoleProcess): Promise<number> {
  const match = await role.stdout.waitFor(/listening on [^\s]+:(\d+)/, 30_000);
  return Number(match[1]);
}

/** Waits until the client printed `count` responses; fails on an error line. */
async function waitForResponses(
  client: RoleProcess,
  count: number,
): Promise<void> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (true) {
    const responses = client.stdout.lines.filter((line) =>
      line.startsWith("Server response: ")
    ).length;
    if (responses >= count) return;
    const error = client.stderr.lines.find((line) => line.startsWith("Error"));
    if (error) throw new Error(error);
    if (Date.now() > deadline) throw new Error("no response in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function stop(role: RoleProcess | undefined): Promise<void> {
  if (!role) return;
  role.kill("SIGTERM");
  await role.finished(10_000).catch(() => role[Symbol.asyncDispose]());
}

/**
 * Runs the file-service demo over one transport.
 *
 * @param transport `tcp` or `snw`.
 * @param sizeBytes The size of the generated file.
 * @returns Printable lines: the transcript, one line per step (size, time,
 *   throughput) and the SHA-256 verdict (`match` or `MISMATCH`), or a
 *   `FAIL` line.
 */
export async function runFileServiceDemo(
  transport: "tcp" | "snw",
  sizeBytes: number,
): Promise<string[]> {
  const root = await Deno.makeTempDir({ prefix: "sockkit-file-demo-" });
  const dirs = {
    origin: join(root, "server"),
    cache: join(root, "cache"),
    client: join(root, "client"),
  };
  const lines = [
    `file service over ${transport}: origin, cache and client on 127.0.0.1, ${
      (sizeBytes / MiB).toFixed(1)
    } MiB file`,
  ];
  let origin: RoleProcess | undefined;
  let cache: RoleProcess | undefined;
  let client: RoleProcess | undefined;
  try {
    await Deno.mkdir(dirs.client, { recursive: true });
    const source = join(dirs.client, "demo.bin");
    await writeTestFile(source, sizeBytes, 2026);
    const digest = await sha256File(source);
    origin = startRole("server", ["0", transport, "--dir", dirs.origin]);
    const originPort = await listeningPort(origin);
    cache = startRole("cache", [
      "0",
      "127.0.0.1",
      String(originPort),
      transport,
      "--dir",
      dirs.cache,
      "--max-bytes",
      String(Math.max(2 * sizeBytes, 1024 * MiB)),
    ]);
    const cachePort = await listeningPort(cache);
    client = startRole("client", [
      "127.0.0.1",
      String(originPort),
      "127.0.0.1",
      String(cachePort),
      transport,
      "--dir",
      dirs.client,
    ], { stdin: true });
    const steps: Array<[string, string]> = [
      ["put demo.bin", "put"],
      ["get demo.bin", "get (miss)"],
      ["get demo.bin", "get (hit)"],
    ];
    const timings: string[] = [];
    const downloads: string[] = [];
    for (const [index, [command, label]] of steps.entries()) {
      // Each get must bring the file back: the uploaded copy goes first.
      if (command.startsWith("get")) await Deno.remove(source);
      const started = performance.now();
      await client.write(`${command}\n`);
      await waitForResponses(client, index + 1);
      const ms = performance.now() - started;
      if (command.startsWith("get")) {
        downloads.push(await sha256File(source).catch(() => "missing"));
      }
      timings.push(
        `  ${label.padEnd(10)} ${sizeBytes} bytes in ${
          ms.toFixed(0).padStart(6)
        } ms (${rate(sizeBytes, ms)})`,
      );
    }
    await client.write("quit\n");
    await client.closeStdin();
    const finished = await client.finished(30_000);
    client = undefined;
    for (const line of finished.stdout.trimEnd().split("\n")) {
      lines.push(`  | ${line}`);
    }
    lines.push(...timings);
    const copies = await Promise.all([
      sha256File(join(dirs.origin, "demo.bin")),
      sha256File(join(dirs.cache, "demo.bin")),
    ]);
    const same = [...copies, ...downloads].every((copy) => copy === digest);
    lines.push(
      `  SHA-256 ${same ? "match" : "MISMATCH"} ${
        digest.slice(0, 16)
      }… (upload = origin = cache = each download)`,
    );
    if (finished.code !== 0) lines.push(`  FAIL: client exit ${finished.code}`);
  } catch (error) {
    lines.push(
      `  FAIL: ${error instanceof Error ? error.message : String(error)}`,
    );
  } finally {
    if (client) await client[Symbol.asyncDispose]();
    await stop(cache);
    await stop(origin);
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  return lines;
}

if (import.meta.main) {
  const transport = Deno.args[0] === "snw" ? "snw" : "tcp";
  const size = Number(Deno.args[1] ?? "10") * MiB;
  for (const line of await runFileServiceDemo(transport, size)) {
    console.log(line);
  }
}
