/**
 * The four executables' command lines: every positional form resolves to
 * its service, `--help`/`--version` answer, bad command lines exit 2, and
 * `make build`'s launchers run from any directory.
 */

import { deepEqual, equal, match, ok, throws } from "node:assert/strict";
import {
  MAX_TIMEOUT_MS,
  parseCommandLine,
  parseDurationMs,
  UsageError,
} from "../roles/cli.ts";
import { parseIdleTimeout as parseRepeatIdleTimeout } from "../roles/repeat/repeat_options.ts";
import { fileURLToPath } from "node:url";
import { resolveClient, resolveServer } from "../roles/invocation.ts";
import { VERSION } from "../version.ts";
import { FILE_ROLE_V8_FLAGS } from "../bench/build.ts";
import { type RoleName, runRole } from "./_helpers/role_process.ts";

Deno.test("invocation: each positional form of SPEC §0 resolves to its service", () => {
  const server: [string[], string][] = [
    [["9000", "tcp"], "origin"],
    [["9000", "snw", "--dir", "d"], "origin"],
    [["9000", "files"], "upload"],
    [["9000"], "stream"],
    [["9000", "-v"], "stream"],
    [["9000", "--idle-timeout", "5"], "stream"],
    // Options and their values do not count as words, wherever they stand.
    [["9000", "-v", "saved"], "upload"],
    [["9000", "--timeout", "5", "saved"], "upload"],
    [["-v", "9000", "tcp"], "origin"],
    [["repeat", "9000", "ref.bin"], "repeat"],
    [["upload", "9000", "tcp"], "upload"],
    [["stream", "9000"], "stream"],
    [["origin", "9000", "tcp"], "origin"],
  ];
  for (const [args, service] of server) {
    equal(resolveServer(args).service, service, args.join(" "));
  }
  deepEqual(resolveServer(["repeat", "9000", "r"]).args, ["9000", "r"]);
  const client: [string[], string][] = [
    [["h", "1", "h", "2", "tcp"], "files"],
    [["h", "1", "h", "2", "snw"], "files"],
    [["h", "1", "f.txt"], "upload"],
    [["h", "1", "GET", "f"], "stream"],
    [["h", "1", "put", "f"], "stream"],
    [["h", "1", "Del", "f"], "stream"],
    // A file named like a verb: three arguments are always an upload.
    [["h", "1", "del"], "upload"],
    [["h", "1", "GET"], "upload"],
    [["h", "1", "GET", "f", "extra"], "stream"],
    [["h", "1", "del", "-v"], "upload"],
    [["h", "1", "del", "--timeout", "5"], "upload"],
    [["h", "1", "--timeout-ms", "900", "put"], "upload"],
    [["h", "1", "GET", "f", "--block-size", "4096"], "stream"],
    [["h", "1", "h", "2", "--dir", "d", "snw"], "files"],
    [["repeat", "h", "1", "f"], "repeat"],
    [["files", "h", "1", "h", "2", "tcp"], "files"],
  ];
  for (const [args, service] of client) {
    equal(resolveClient(args).service, service, args.join(" "));
  }
  // A misspelt or missing transport is named, not taken for another service.
  const named: [() => unknown, RegExp][] = [
    [() => resolveServer(["9000", "udp"]), /unknown transport "udp"/],
    [() => resolveServer(["9000", "TCP"]), /server upload <port> TCP/],
    [() => resolveServer(["9000", "Snw"]), /unknown transport "Snw"/],
    [() => resolveClient(["h", "1", "h", "2"]), /missing tcp\|snw/],
    [() => resolveClient(["h", "1", "h", "2", "udp"]), /transport "udp"/],
  ];
  for (const [resolve, message] of named) throws(resolve, message);
  equal(resolveServer(["upload", "9000", "udp"]).service, "upload");
});

Deno.test("every subcommand answers -h/--help and -V/--version (exit 0 on stdout)", async () => {
  const forms: [RoleName, string[]][] = [
    ["server", ["repeat", "-h"]],
    ["server", ["origin", "--help"]],
    ["server", ["stream", "-h"]],
    ["client", ["repeat", "--help"]],
    ["client", ["files", "-h"]],
    ["client", ["stream", "-h"]],
    ["cache", ["serve", "-h"]],
    ["server", ["upload", "-h"]],
    ["chat", ["server", "-h"]],
  ];
  for (const [role, args] of forms) {
    const help = await runRole(role, args, { timeoutMs: 30_000 });
    equal(help.code, 0, `${role} ${args.join(" ")}: ${help.stderr}`);
    match(help.stdout, /usage|Usage|^Server$/m, `${role} ${args.join(" ")}`);
    equal(help.stderr, "");
  }
  const versions: [RoleName, string[]][] = [
    ["server", ["repeat", "9000", "-V"]],
    ["server", ["upload", "--version"]],
    ["server", ["5000", "dir", "-V"]],
    ["client", ["h", "1", "f", "--version"]],
    ["chat", ["client", "-V"]],
  ];
  for (const [role, args] of versions) {
    const version = await runRole(role, args, { timeoutMs: 30_000 });
    equal(version.code, 0, `${role} ${args.join(" ")}: ${version.stderr}`);
    equal(version.stdout, `${role} ${VERSION}\n`);
  }
  // After "--" it is an argument, not a request for help.
  const literal = await runRole("client", ["stream", "--", "-h"], {
    timeoutMs: 30_000,
  });
  equal(literal.code, 2);
});

const ROLES: RoleName[] = ["client", "server", "cache", "chat"];

for (const role of ROLES) {
  Deno.test(`${role}: --version and --help answer, no arguments is a usage error`, async () => {
    const version = await runRole(role, ["--version"], { timeoutMs: 30_000 });
    equal(version.code, 0);
    equal(version.stdout, `${role} ${VERSION}\n`);
    const help = await runRole(role, ["--help"], { timeoutMs: 30_000 });
    equal(help.code, 0);
    match(help.stdout + help.stderr, /usage|Usage/);
    const none = await runRole(role, [], { timeoutMs: 30_000 });
    equal(none.code, 2);
    ok(none.stderr.length > 0, "usage goes to stderr");
  });
}

Deno.test("server: a bad port is a usage error naming the accepted range (exit 2), a negative one too", async () => {
  for (const port of ["abc", "70000", "-1"]) {
    const result = await runRole("server", [port, "tcp", "--log"], {
      timeoutMs: 30_000,
    });
    equal(result.code, 2, `${port}: ${result.stderr}`);
    match(
      result.stderr,
      new RegExp(
        `^server: invalid port "${port}": must be 0-65535 \\(0: any free port\\)\nusage:`,
      ),
    );
  }
  const cache = await runRole("cache", ["-4", "127.0.0.1", "9", "tcp"]);
  equal(cache.code, 2);
  match(cache.stderr, /^cache: invalid port "-4": must be 0-65535/);
});

Deno.test("make build: launchers in dist/ run from another directory", async () => {
  const root = fileURLToPath(new URL("../", import.meta.url));
  const build = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/build.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  equal(build.code, 0, new TextDecoder().decode(build.stderr));
  const elsewhere = await Deno.makeTempDir();
  try {
    for (const role of ROLES) {
      const run = await new Deno.Command(`${root}dist/${role}`, {
        args: ["--version"],
        cwd: elsewhere,
        stdout: "piped",
        stderr: "piped",
        env: {
          PATH: `${Deno.execPath().replace(/\/[^/]+$/, "")}:/usr/bin:/bin`,
        },
      }).output();
      equal(new TextDecoder().decode(run.stdout), `${role} ${VERSION}\n`);
      equal(run.code, 0);
      // The file roles' launchers carry the young-generation cap (and V8
      // took it: an unknown flag would have failed the run above).
      const shebang = (await Deno.readTextFile(`${root}dist/${role}`))
        .split("\n", 1)[0];
      equal(shebang.includes(FILE_ROLE_V8_FLAGS), role !== "chat", shebang);
    }
  } finally {
    await Deno.remove(elsewhere, { recursive: true });
  }
});

Deno.test("deno tasks run the executables with the launchers' V8 flags", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  for (const role of ROLES) {
    const task: string = config.tasks[role];
    equal(task.includes(FILE_ROLE_V8_FLAGS), role !== "chat", task);
  }
});

Deno.test("parseCommandLine: a value starting with - is taken as the value (as getopt does), up to --", () => {
  const options = {
    times: { type: "string" },
    user: { type: "string", short: "u" },
    json: { type: "boolean" },
  } as const;
  const parsed = parseCommandLine({
    args: ["--times", "-1", "-u", "-x", "--json", "--", "--times", "-2"],
    options,
    allowPositionals: true,
  });
  deepEqual(parsed.values, { times: "-1", user: "-x", json: true });
  deepEqual(parsed.positionals, ["--times", "-2"]);
  // A negative number among the positional words is one of them, in order.
  const numbers = parseCommandLine({
    args: ["7", "--json", "-1", "-u", "-x", "b"],
    options,
    allowPositionals: true,
  });
  deepEqual(numbers.values, { json: true, user: "-x" });
  deepEqual(numbers.positionals, ["7", "-1", "b"]);
  // A missing value is still an error, with parseArgs' first line.
  throws(
    () => parseCommandLine({ args: ["--times"], options }),
    (error) => error instanceof UsageError && /--times/.test(error.message),
  );
});

Deno.test("-h and -V given as an option's value are that value, not a request for help or version", async () => {
  const transport = await runRole("client", [
    "repeat",
    "127.0.0.1",
    "9",
    "f.bin",
    "--transport",
    "-h",
  ]);
  equal(transport.code, 2, transport.stderr);
  match(transport.stderr, /^client: .*"-h"/);
  const dir = await runRole("server", ["9000", "tcp", "--dir", "-V", "-x"]);
  equal(dir.code, 2, dir.stderr);
  ok(!dir.stdout.includes("server "), dir.stdout);
  // As a word of its own it still is.
  equal((await runRole("server", ["9000", "tcp", "-V"])).code, 0);
});

Deno.test("usage errors from the option parser are one balanced line", () => {
  const options = { dir: { type: "string" as const } };
  throws(
    () => parseCommandLine({ args: ["--bogus"], options, strict: true }),
    (error: Error) =>
      error instanceof UsageError &&
      error.message ===
        'unknown option "--bogus" (a word starting with "-" that is no option goes after "--")',
  );
  throws(
    () => parseCommandLine({ args: ["--dir"], options, strict: true }),
    (error: Error) =>
      error instanceof UsageError &&
      error.message === "option --dir <value> needs a value",
  );
  const flag = { json: { type: "boolean" as const } };
  throws(
    () => parseCommandLine({ args: ["--json=x"], options: flag, strict: true }),
    (error: Error) =>
      error instanceof UsageError &&
      error.message === "option --json takes no value",
  );
  throws(
    () => parseCommandLine({ args: ["a"], options: flag, strict: true }),
    (error: Error) =>
      error instanceof UsageError &&
      error.message === 'unexpected argument "a"',
  );
});

Deno.test("timeout options: every role reads the same plain decimal forms", () => {
  equal(parseDurationMs("1.5", "s"), 1500);
  equal(parseDurationMs("0", "s"), 0);
  equal(parseDurationMs("0.0005", "s"), 1); // rounds to the nearest ms
  equal(parseDurationMs("2147483", "s"), 2_147_483_000);
  equal(parseDurationMs("2147483647", "ms"), MAX_TIMEOUT_MS);
  for (
    const [text, unit] of [
      ["1e3", "s"],
      ["0x10", "s"],
      [" 5", "s"],
      ["-1", "s"],
      ["Infinity", "s"],
      ["", "s"],
      ["1.", "s"],
      ["0.0004", "s"], // above zero, under 1 ms
      ["2147484", "s"], // longer than a timer can wait
      ["1.5", "ms"],
      ["2147483648", "ms"],
    ] as const
  ) {
    equal(parseDurationMs(text, unit), undefined, `${text} ${unit}`);
  }
  // The repeat roles' --idle-timeout is in ms and must be at least 1.
  equal(parseRepeatIdleTimeout("250", "tcp"), 250);
  equal(parseRepeatIdleTimeout("99999999", "tcp"), 99_999_999);
  for (const bad of ["0", "1e3", "2147483648"]) {
    throws(() => parseRepeatIdleTimeout(bad, "tcp"), UsageError, bad);
  }
});
