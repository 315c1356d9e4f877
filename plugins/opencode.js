// difflore: written by 'difflore hooks install {{agent}}'; 'difflore hooks
// uninstall {{agent}}' removes it. Changes made here are lost at the next
// install.
//
// It hands each event below to 'difflore enqueue', which keeps it in a
// local outbox. The hand-over is synchronous (spawnSync) and done before
// the handler returns: the host does not await the "event" hook, and exits
// at the end of a run without waiting for a plugin's pending work, so an
// asynchronous spawn would lose the last events of a session (session.error,
// session.idle). The cost to the host is one 'difflore enqueue' per event.
// Only Node's built-ins are used, so that the plugin loads with nothing
// installed beside it.
import { spawnSync } from "node:child_process";

const program = "{{program}}";
const agent = "{{agent}}";
const autostart = "{{autostart}}" === "yes";

// events are the bus events handed over, as kind AGENT.<type>; the others
// (streamed message parts and deltas, status ticks, file watcher and LSP
// chatter) would cost an enqueue each many times a second.
const events = new Set([
  "session.created",
  "session.deleted",
  "session.error",
  "session.idle",
  "session.compacted",
  "message.updated",
  "permission.asked",
  "permission.replied",
  "question.asked",
  "file.edited",
  "command.executed",
  "todo.updated",
]);

// enqueue hands one event to difflore: payload is an object whose first
// key is sessionID, which difflore reads as the event's session.id. It
// never throws and prints nothing: whatever happens, the host goes on.
function enqueue(kind, payload) {
  try {
    const args = ["enqueue", "--kind", agent + "." + kind];
    if (autostart) args.push("--ensure-daemon");
    spawnSync(program, args, {
      input: JSON.stringify(payload),
      stdio: ["pipe", "ignore", "ignore"],
      timeout: 10000,
      windowsHide: true,
    });
  } catch {
    // Nothing to do: the host must not see difflore fail.
  }
}

// sessionOf is the session an event belongs to.
function sessionOf(event) {
  const p = (event && event.properties) || {};
  return p.sessionID ?? p.info?.sessionID ?? p.part?.sessionID;
}

// hook hands over a hook's (input, output) under kind name.
function hook(name) {
  return (input, output) => {
    enqueue(name, { sessionID: input?.sessionID, input, output });
  };
}

export const DiffloreHooks = async () => ({
  event: ({ event }) => {
    if (event && events.has(event.type)) {
      enqueue(event.type, { sessionID: sessionOf(event), event });
    }
  },
  "chat.message": hook("chat.message"),
  "tool.execute.before": hook("tool.execute.before"),
  "tool.execute.after": hook("tool.execute.after"),
});
