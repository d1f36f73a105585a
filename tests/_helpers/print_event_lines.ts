/**
 * A child process for the event-line tests: prints `<pairs>` stdout event
 * lines and stderr problem lines in turn (`out <i>` / `err <i>`), then waits
 * until they are written.
 *
 * Run: `deno run --allow-read print_event_lines.ts <pairs>`.
 *
 * @module
 */

import {
  flushEventLines,
  printEventLine,
  printEventProblem,
} from "../../roles/event_lines.ts";

if (import.meta.main) {
  const pairs = Number(Deno.args[0] ?? "1000");
  for (let i = 0; i < pairs; i++) {
    printEventLine(`out ${i}`);
    printEventProblem(`err ${i}`);
  }
  await flushEventLines(Infinity);
}
