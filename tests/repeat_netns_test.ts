/**
 * The repeat transfer over a real, non-loopback interface (SPEC §2: the
 * assignment forbids 127.0.0.1 / localhost for the real run): two network
 * namespaces joined by a veth pair with addresses from a private test
 * range, `server repeat` in one, `client repeat` in the other, 100 tcp
 * copies. The namespaces are removed afterwards, also when the test fails.
 *
 * Needs Linux, root and `ip netns` (iproute2); elsewhere the test is
 * ignored and the reason printed. No traffic leaves the two namespaces.
 *
 * @module
 */

import { equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { sha256File, tempDir, writeTestFile } from "./_helpers/files.ts";
import { roleFlags, RoleProcess } from "./_helpers/role_process.ts";
import {
  assertAverageIsMean,
  assertLines,
  expectedClientLines,
  expectedServerLines,
} from "./repeat/repeat_harness.ts";

const NETNS_SERVER_ADDR = "10.213.0.1"; // netns test range (inside the namespaces only)
const NETNS_CLIENT_ADDR = "10.213.0.2"; // netns test range
const NETNS_PREFIX = 24; // netns test range
const TIMES = 100;
const ROOT = new URL("../", import.meta.url);

const tag = `${Deno.pid % 100000}`;
const NS_SERVER = `sockkit-rs-${tag}`;
const NS_CLIENT = `sockkit-rc-${tag}`;
const VETH_SERVER = `skrs${tag}`;
const VETH_CLIENT = `skrc${tag}`;

/** Runs a command; resolves to its exit code and stderr. */
async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; stderr: string }> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } catch (error) {
    return {
      code: -1,
      stderr: error instanceof Error ? error.message : String(error),
    };
  }
}

/** Runs `ip ...args` and throws with its stderr when it fails. */
async function ip(...args: string[]): Promise<void> {
  const { code, stderr } = await run("ip", args);
  if (code !== 0) throw new Error(`ip ${args.join(" ")} failed: ${stderr}`);
}

/** Why the namespaces cannot be used here, or `undefined` when they can. */
async function unavailableReason(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `needs Linux, not ${Deno.build.os}`;
  try {
    if (Deno.uid() !== 0) return "needs root to create network namespaces";
  } catch {
    return "needs --allow-sys to check for root";
  }
  const runAccess = await Deno.permissions.query({
    name: "run",
    command: "ip",
  });
  if (runAccess.state !== "granted") return "needs --allow-run to call ip";
  const version = await run("ip", ["-V"]);
  if (version.code !== 0) {
    return `no usable "ip" command (iproute2; apt-get install -y iproute2): ${version.stderr.trim()}`;
  }
  const probe = `sockkit-probe-${tag}`;
  const added = await run("ip", ["netns", "add", probe]);
  if (added.code !== 0) {
    return `"ip netns add" failed: ${added.stderr.trim()}`;
  }
  await run("ip", ["netns", "del", probe]);
  return undefined;
}

async function setUpNamespaces(): Promise<void> {
  await ip("netns", "add", NS_SERVER);
  await ip("netns", "add", NS_CLIENT);
  await ip(
    "link",
    "add",
    VETH_SERVER,
    "type",
    "veth",
    "peer",
    "name",
    VETH_CLIENT,
  );
  await ip("link", "set", VETH_SERVER, "netns", NS_SERVER);
  await ip("link", "set", VETH_CLIENT, "netns", NS_CLIENT);
  await ip(
    "-n",
    NS_SERVER,
    "addr",
    "add",
    `${NETNS_SERVER_ADDR}/${NETNS_PREFIX}`,
    "dev",
    VETH_SERVER,
  ); // netns
  await ip(
    "-n",
    NS_CLIENT,
    "addr",
    "add",
    `${NETNS_CLIENT_ADDR}/${NETNS_PREFIX}`,
    "dev",
    VETH_CLIENT,
  ); // netns
  for (
    const [ns, dev] of [[NS_SERVER, VETH_SERVER], [NS_CLIENT, VETH_CLIENT]]
  ) {
    await ip("-n", ns, "link", "set", "lo", "up");
    await ip("-n", ns, "link", "set", dev, "up");
  }
}

async function tearDownNamespaces(): Promise<void> {
  // Deleting a namespace also deletes the veth end inside it.
  await run("ip", ["netns", "del", NS_SERVER]);
  await run("ip", ["netns", "del", NS_CLIENT]);
  await run("ip", ["link", "del", VETH_SERVER]); // only if it never moved
}

/** Starts an executable inside a namespace. */
function startInNamespace(
  ns: string,
  role: "client" | "server",
  args: string[],
  cwd: string,
): RoleProcess {
  const main = new URL(`roles/${role}/main.ts`, ROOT).pathname;
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      Deno.execPath(),
      "run",
      ...roleFlags(role),
      main,
      ...args,
    ],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  return new RoleProcess(child, false);
}

const reason = await unavailableReason();
if (reason) {
  console.log(`repeat_netns_test: skipped: ${reason}`);
}

Deno.test({
  name:
    `repeat over tcp between two network namespaces (non-loopback): ${TIMES} copies, exact lines, 0 incorrect`,
  ignore: reason !== undefined,
  async fn() {
    await using dir = await tempDir();
    await writeTestFile(join(dir.path, "xyz.txt"), 4096, 21);
    await writeTestFile(join(dir.path, "reference.txt"), 4096, 21);
    await tearDownNamespaces(); // leftovers of an aborted run with the same pid
    try {
      await setUpNamespaces();
      await using server = startInNamespace(NS_SERVER, "server", [
        "repeat",
        "0",
        "reference.txt",
        "--times",
        String(TIMES),
        "--dir",
        "copies",
      ], dir.path);
      const listening = await server.stdout.waitFor(
        /Listening on 0\.0\.0\.0:(\d+) \(tcp\)\n/,
        20_000,
      );
      await using client = startInNamespace(NS_CLIENT, "client", [
        "repeat",
        NETNS_SERVER_ADDR, // netns
        listening[1],
        "xyz.txt",
        "--times",
        String(TIMES),
      ], dir.path);
      const sent = await client.finished(60_000);
      const received = await server.finished(60_000);
      equal(sent.code, 0, sent.stderr);
      equal(received.code, 0, received.stderr);
      assertLines(
        received.stdout,
        expectedServerLines("tcp", "xyz.txt", TIMES),
        "server",
      );
      assertLines(
        sent.stdout,
        expectedClientLines(NETNS_SERVER_ADDR, "xyz.txt", TIMES),
        "client",
      ); // netns
      ok(!sent.stdout.includes("127.0.0.1"), "the client never names loopback");
      assertAverageIsMean(received.stdout);
      assertAverageIsMean(sent.stdout);
      const sha = await sha256File(join(dir.path, "xyz.txt"));
      equal(await sha256File(join(dir.path, "copies", "100_xyz.txt")), sha);
    } finally {
      await tearDownNamespaces();
    }
    const left = await new Deno.Command("ip", {
      args: ["netns", "list"],
      stdout: "piped",
      stderr: "null",
    }).output();
    ok(
      !new TextDecoder().decode(left.stdout).includes(NS_SERVER),
      "namespaces removed",
    );
  },
});
