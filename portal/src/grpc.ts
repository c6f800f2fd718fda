// Server-pushed task updates: TasksService.WatchTask over gRPC-Web through Envoy.
import { createClient, ConnectError, Code } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { TasksService, TaskState, type Task } from "../gen/firecrest/tasks/v1/tasks_pb";
import { Auth } from "./auth";

export { TaskState, type Task };

export function stateName(s: TaskState): string {
  return (TaskState[s] ?? "UNKNOWN").replace("TASK_STATE_", "");
}

/** Call `onTask` with the task at once and on every change until it is done (or `signal` aborts). */
export async function watchTask(
  auth: Auth, base: string, taskId: string, onTask: (t: Task) => void, signal: AbortSignal,
): Promise<void> {
  const transport = createGrpcWebTransport({ baseUrl: base });
  const client = createClient(TasksService, transport);
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      const token = await auth.accessToken();
      for await (const res of client.watchTask({ taskId }, { signal, headers: { authorization: `Bearer ${token}` } })) {
        if (res.task) onTask(res.task);
        if (res.task?.done) return;
      }
      return;
    } catch (e) {
      if (signal.aborted) return;
      const err = ConnectError.from(e);
      if (err.code === Code.NotFound) throw new Error("This task does not exist (any more).");
      if (err.code === Code.Unauthenticated && attempt === 0) {
        await auth.accessToken(true);
        continue;
      }
      if (attempt >= 5) throw new Error("Live updates stopped: the gateway cannot be reached. Reload to try again.");
      await new Promise((r) => setTimeout(r, 1000 * (attempt + 1)));
    }
  }
}
