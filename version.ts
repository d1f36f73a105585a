/** The sockkit release, kept equal to `version` in deno.json (tested). */
export const VERSION = "0.1.0";
