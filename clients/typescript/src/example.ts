// The firecrest gateway over native gRPC from TypeScript (Node), through Envoy.
//
//     node dist/example.js WORKDIR
//
// Gets a token with client credentials from the issuer, lists the systems, submits a job that
// writes into WORKDIR (a directory of the caller on the system), follows its task with
// TasksService.WatchTask to its final state and prints the job's output (StorageService.View).
// Environment (as `firecrest-stack env` prints it): F7T_TOKEN_URL, F7T_CLIENT_ID,
// F7T_CLIENT_SECRET, F7T_GRPC_TARGET (host:port of Envoy), F7T_SYSTEM (optional: default the
// first system listed).
import { randomUUID } from "node:crypto";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ComputeService } from "./gen/firecrest/compute/v1/compute_pb.js";
import { StatusService } from "./gen/firecrest/status/v1/status_pb.js";
import { StorageService } from "./gen/firecrest/storage/v1/storage_pb.js";
import { type Task, TaskState, TasksService } from "./gen/firecrest/tasks/v1/tasks_pb.js";

const SCRIPT = '#!/bin/bash\necho "hello from the typescript example, job $SLURM_JOB_ID"\n';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

async function clientCredentialsToken(tokenUrl: string, clientId: string, clientSecret: string): Promise<string> {
  const form = new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret });
  const r = await fetch(tokenUrl, { method: "POST", body: form });
  if (!r.ok) throw new Error(`token endpoint answered ${r.status}: ${await r.text()}`);
  return ((await r.json()) as { access_token: string }).access_token;
}

async function main(): Promise<number> {
  if (process.argv.length !== 3) {
    console.error("usage: node dist/example.js WORKDIR");
    return 2;
  }
  const workdir = process.argv[2].replace(/\/+$/, "");
  const token = await clientCredentialsToken(env("F7T_TOKEN_URL"), env("F7T_CLIENT_ID"), env("F7T_CLIENT_SECRET"));
  // the token travels as call metadata; Envoy checks it on every call
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcTransport({ baseUrl: `http://${env("F7T_GRPC_TARGET")}`, interceptors: [bearer] });
  const status = createClient(StatusService, transport);
  const compute = createClient(ComputeService, transport);
  const tasks = createClient(TasksService, transport);
  const storage = createClient(StorageService, transport);

  const { systems } = await status.listSystems({});
  console.log("systems:", systems.map((s) => s.name).join(" "));
  const system = process.env.F7T_SYSTEM || systems[0].name;

  const stdout = `${workdir}/typescript-example-%j.out`;
  // requestId makes the submission idempotent: a retry with the same id returns the same job
  const { jobId } = await compute.submitJob({
    systemName: system,
    requestId: randomUUID(),
    job: { name: "typescript-example", workingDirectory: workdir, script: SCRIPT, standardOutput: stdout },
  });
  console.log("job:", jobId);

  // every submission is a task of kind "job" whose metadata names the job: find it
  let taskId = "";
  for (let pageToken = ""; !taskId; ) {
    const page = await tasks.listTasks({ kind: "job", pageSize: 100, pageToken });
    taskId = page.tasks.find((t) => t.metadata?.jobId === jobId)?.id ?? "";
    pageToken = page.nextPageToken;
    if (!taskId && !pageToken) throw new Error(`no task for job ${jobId}`);
  }

  let last: Task | undefined;
  for await (const change of tasks.watchTask({ taskId })) {
    last = change.task;
    console.log("task:", taskId, `TASK_STATE_${TaskState[last?.state ?? TaskState.UNSPECIFIED]}`);
  }
  if (last?.state !== TaskState.SUCCEEDED) {
    console.error("the job did not succeed:", last);
    return 1;
  }

  const view = await storage.view({ systemName: system, path: stdout.replace("%j", jobId) });
  console.log("output:", view.output.replace(/\n$/, ""));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
