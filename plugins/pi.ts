// difflore: written by 'difflore hooks install {{agent}}'; 'difflore hooks
// uninstall {{agent}}' removes it. Changes made here are lost at the next
// install.
//
// It hands each event below to 'difflore enqueue', which keeps it in a
// local outbox. The hand-over is synchronous (spawnSync) and done before
// the handler returns, so that the events of a session's end
// (session_shutdown) are kept when pi exits right after them. The cost to
// pi is one 'difflore enqueue' per event. Only Node's built-ins are used,
// and no type is imported, so that the extension loads with nothing
// installed beside it.
import { spawnSync } from "node:child_process";

const program = "{{program}}";
const agent = "{{agent}}";
const autostart = "{{autostart}}" === "yes";

// events are the extension events handed over, as kind AGENT.<type>; the
// others stream (message_update, tool_execution_update), carry a whole
// model request (context, before_provider_request) or repeat one of these
// (tool_execution_start and _end beside tool_call and tool_result).
const events = [
  "session_start",
  "input",
  "agent_start",
  "turn_start",
  "tool_call",
  "tool_result",
  "turn_end",
  "agent_end",
  "session_compact",
  "model_select",
  "user_bash",
  "session_shutdown",
];

// enqueue hands one event to difflore: payload is an object whose first
// key is sessionID, which difflore reads as the event's session.id. It
// never throws and prints nothing: whatever happens, pi goes on.
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
    // Nothing to do: pi must not see difflore fail.
  }
}

// sessionOf is the id pi's session manager gives the current session.
function sessionOf(ctx) {
  try {
    return ctx?.sessionManager?.getSessionId?.();
  } catch {
    return undefined;
  }
}

export default function difflore(pi) {
  for (const name of events) {
    pi.on(name, (event, ctx) => {
      enqueue(name, { sessionID: sessionOf(ctx), event });
    });
  }
}
