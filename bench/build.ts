/**
 * `make build` / `make compile`: puts the four executables in `dist/`.
 *
 * With a `denort` runtime at hand (`DENORT_BIN` set, or `deno compile`
 * able to download it) they are `deno compile` binaries. Otherwise they are
 * self-contained launchers: the role bundled into one JavaScript file
 * behind a shebang that carries the exact permission flags, so they run
 * from any working directory with only `deno` on PATH. `--compile` insists
 * on `deno compile` and fails with one clear line when denort is missing.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The four executables. */
export const ROLES = ["client", "server", "cache", "chat"] as const;

/** The permissions every role runs with (also baked into launchers). */
export const ROLE_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--unstable-net",
];

/** One of the four executables. */
export type RoleExecutable = typeof ROLES[number];

/**
 * V8's young generation capped at 2 MiB semi-spaces. A process that moves a
 * long stream of small packets (snw's 1000-byte chunks) allocates a little
 * garbage per packet; V8 then keeps growing its young generation towards
 * its 16 MiB semi-space default, and memory with it, though the live heap
 * stays ~5 MB: a 1 GiB put over snw took the client to 118 MiB peak RSS,
 * and 69 MiB with the cap, at the same speed. The chat server keeps it
 * default (its fan-out latency was less steady with the cap).
 */
export const FILE_ROLE_V8_FLAGS = "--v8-flags=--max-semi-space-size=2";

/**
 * Everything an executable runs with after `deno run`: the permissions and,
 * for the file roles, {@linkcode FILE_ROLE_V8_FLAGS}.
 *
 * @param role The executable.
 * @returns The flags.
 */
export function roleRunFlags(role: RoleExecutable): string[] {
  return role === "chat"
    ? [...ROLE_PERMISSIONS]
    : [...ROLE_PERMISSIONS, FILE_ROLE_V8_FLAGS];
}

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DIST = `${ROOT}dist`;

async function run(args: string[]): Promise<{ ok: boolean; text: string }> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
      // A denort download that hangs must not hang the build.
      signal: AbortSignal.timeout(120_000),
    }).output();
  } catch (error) {
    return { ok: false, text: String(error) };
  }
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    ok: output.success,
    text: decode(output.stdout) + decode(output.stderr),
  };
}

async function compileRole(
  role: RoleExecutable,
): Promise<{ ok: boolean; text: string }> {
  return await run([
    "compile",
    "--quiet",
    ...roleRunFlags(role),
    "--output",
    `${DIST}/${role}`,
    `roles/${role}/main.ts`,
  ]);
}

async function launchRole(role: RoleExecutable): Promise<void> {
  const bundlePath = `${DIST}/.${role}.bundle.js`;
  const bundled = await run([
    "bundle",
    "--quiet",
    "--platform",
    "deno",
    "--output",
    bundlePath,
    `roles/${role}/main.ts`,
  ]);
  if (!bundled.ok) throw new Error(`bundling ${role} failed:\n${bundled.text}`);
  const code = await Deno.readTextFile(bundlePath);
  await Deno.remove(bundlePath);
  const shebang = `#!/usr/bin/env -S deno run --quiet --no-config --ext=js ${
    roleRunFlags(role).join(" ")
  }`;
  const path = `${DIST}/${role}`;
  await Deno.writeTextFile(path, `${shebang}\n${code}`);
  await Deno.chmod(path, 0o755);
}

async function main(args: string[]): Promise<number> {
  const insist = args.includes("--compile");
  await Deno.mkdir(DIST, { recursive: true });
  const first = await compileRole(ROLES[0]);
  if (first.ok) {
    for (const role of ROLES.slice(1)) {
      const result = await compileRole(role);
      if (!result.ok) {
        console.error(result.text.trim());
        return 1;
      }
    }
    console.log(`dist/: ${ROLES.join(", ")} (deno compile binaries)`);
    return 0;
  }
  if (insist) {
    console.error(
      "make compile: deno compile needs a denort runtime, which cannot be " +
        "downloaded here; set DENORT_BIN to a denort binary (or use make build " +
        "for launchers)",
    );
    return 1;
  }
  for (const role of ROLES) await launchRole(role);
  console.log(
    `dist/: ${
      ROLES.join(", ")
    } (bundled launchers: denort unavailable, need deno on PATH)`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
