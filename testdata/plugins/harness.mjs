// harness loads a plugin file of difflore's as its host does and feeds it
// events: node harness.mjs HOST PLUGIN REPORT FIXTURE...
//
// HOST is opencode (OpenCode and Kilo: every exported function is a plugin,
// called with the plugin context, returning its hooks; the "event" hook is
// called and not awaited, the other hooks are awaited with (input,
// output)) or pi (the default export is called with an API whose on()
// registers handlers, each awaited with (event, ctx)). A fixture is
// AGENT-VERSION.NAME.json: an {event} argument (NAME event.TYPE), an
// [input, output] pair, or a Pi event. REPORT gets, per fixture, the time
// the host spent in the plugin's handlers, in milliseconds. The harness
// itself prints nothing: what the test sees on stdout and stderr is the
// plugin's.
import { register } from "node:module";
import { readFile, writeFile } from "node:fs/promises";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";

// Pi loads a .ts extension by transpiling it; the file difflore writes is
// plain JavaScript, so Node need only be told to read it as a module.
register(
  "data:text/javascript," +
    encodeURIComponent(`
      import { readFile } from "node:fs/promises";
      export async function load(url, context, next) {
        if (url.endsWith(".ts")) {
          return { format: "module", source: await readFile(new URL(url)), shortCircuit: true };
        }
        return next(url, context);
      }`),
);

// piSessionID is the id the harness's session manager gives.
const piSessionID = "pi-session-harness";

const [host, plugin, report, ...fixtures] = process.argv.slice(2);
const mod = await import(pathToFileURL(plugin).href);

const hooks = {};
const handlers = {};
if (host === "opencode") {
  const ctx = { project: {}, client: {}, $: undefined, directory: process.cwd(), worktree: process.cwd() };
  for (const fn of Object.values(mod)) {
    if (typeof fn === "function") Object.assign(hooks, await fn(ctx));
  }
} else {
  mod.default({
    on(name, fn) {
      (handlers[name] ??= []).push(fn);
    },
  });
}

const times = {};
for (const file of fixtures) {
  const data = JSON.parse(await readFile(file, "utf8"));
  const name = basename(file, ".json").replace(/^[a-z]+-\d+(\.\d+)*\./, "");
  const start = performance.now();
  if (host === "opencode" && name.startsWith("event.")) {
    hooks.event?.(data);
  } else if (host === "opencode") {
    await hooks[name]?.(data[0], data[1]);
  } else {
    const ctx = { cwd: process.cwd(), sessionManager: { getSessionId: () => piSessionID } };
    for (const fn of handlers[data.type] ?? []) await fn(data, ctx);
  }
  times[basename(file)] = performance.now() - start;
}
await writeFile(report, JSON.stringify(times));
