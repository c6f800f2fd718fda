// Systems, jobs (list, submit, one job live), and tasks.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, enc } from "./api";
import { stateName, watchTask, type Task } from "./grpc";
import { messageOf, useApp } from "./ctx";
import { formatTime, go } from "./util";

function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [T | undefined, string, () => void] {
  const { fail } = useApp();
  const [data, setData] = useState<T>();
  const [error, setError] = useState("");
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setError("");
    load().then((d) => live && setData(d)).catch((e) => live && setError(fail(e)));
    return () => { live = false; };
  }, [...deps, n]);
  return [data, error, () => setN((x) => x + 1)];
}

export const Err = ({ text }: { text: string }) => (text ? <p class="error" role="alert">{text}</p> : null);

function Badge({ state }: { state: string }) {
  return <span class={`badge s-${state.toLowerCase()}`}>{state}</span>;
}

// ------------------------------------------------------------------ systems
export function SystemsPage() {
  const { api, system } = useApp();
  const [systems, e1] = useLoad(() => api.get("/status/systems"), []);
  const [parts, e2] = useLoad(() => api.get(`/status/${enc(system)}/partitions`), [system]);
  const [info, e3] = useLoad(() => api.get(`/status/${enc(system)}/userinfo`), [system]);
  return (
    <section>
      <h1>Systems</h1>
      <Err text={e1 || e2 || e3} />
      {!systems && !e1 && <p class="loading">Loading…</p>}
      {systems?.systems?.map((s: any) => (
        <article class="card" data-testid={`system-${s.name}`}>
          <h2>{s.name}</h2>
          <div class="table-wrap">
            <table>
              <caption>Health</caption>
              <thead><tr><th scope="col">Service</th><th scope="col">State</th><th scope="col">Details</th></tr></thead>
              <tbody>
                {(s.servicesHealth || []).map((h: any) => (
                  <tr>
                    <td>{h.serviceType}{h.path ? ` ${h.path}` : ""}</td>
                    <td><Badge state={h.healthy ? "HEALTHY" : "UNHEALTHY"} /></td>
                    <td>{h.message || ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </article>
      ))}
      {parts && (
        <article class="card">
          <h2>Partitions on {system}</h2>
          <div class="table-wrap">
            <table>
              <thead><tr><th scope="col">Name</th><th scope="col">CPUs</th><th scope="col">Nodes</th><th scope="col">State</th></tr></thead>
              <tbody>
                {(parts.partitions || []).map((p: any) => (
                  <tr><td>{p.name}</td><td>{p.cpus}</td><td>{p.totalNodes}</td><td>{Array.isArray(p.partition) ? p.partition.join(", ") : String(p.partition ?? "")}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
        </article>
      )}
      {info && (
        <article class="card" data-testid="accounts">
          <h2>You on {system}</h2>
          <dl>
            <dt>User</dt><dd>{info.user?.name} (uid {info.user?.id})</dd>
            <dt>Group</dt><dd>{info.group?.name}</dd>
            <dt>Groups</dt><dd>{(info.groups || []).map((g: any) => g.name).join(", ")}</dd>
            <dt>Accounts</dt><dd>{(info.accounts || []).map((a: any) => a.name + (a.default ? " (default)" : "")).join(", ") || "none"}</dd>
          </dl>
        </article>
      )}
    </section>
  );
}

// ------------------------------------------------------------------ jobs
export function JobsPage() {
  const { api, system } = useApp();
  const [data, error, reload] = useLoad(() => api.get(`/compute/${enc(system)}/jobs`), [system]);
  const all: any[] = [...(data?.jobs || [])].sort((a, b) => Number(b.jobId) - Number(a.jobId));
  const [shown, setShown] = useState(50);
  const jobs = all.slice(0, shown);
  return (
    <section>
      <h1>Jobs</h1>
      <div class="toolbar">
        <a class="button primary" href="#/submit">Submit a job</a>
        <button onClick={reload}>Refresh</button>
      </div>
      <Err text={error} />
      {!data && !error && <p class="loading">Loading…</p>}
      {data && !jobs.length && <p>You have no jobs on {system}.</p>}
      {jobs.length > 0 && (
        <div class="table-wrap">
          <table data-testid="jobs">
            <thead><tr><th scope="col">Job</th><th scope="col">Name</th><th scope="col">State</th><th scope="col">Partition</th><th scope="col">Started</th></tr></thead>
            <tbody>
              {jobs.map((j) => (
                <tr>
                  <td><a href={`#/jobs/${j.jobId}`}>{j.jobId}</a></td>
                  <td>{j.name}</td>
                  <td><Badge state={j.status?.state || "UNKNOWN"} /></td>
                  <td>{j.partition}</td>
                  <td>{formatTime(j.time?.start)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {all.length > shown && (
        <p>
          Showing the {shown} most recent of {all.length} jobs.{" "}
          <button onClick={() => setShown((n) => n + 50)}>Show more</button>
        </p>
      )}
    </section>
  );
}

const EXAMPLE = `#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --time=00:05:00
echo "Hello from $(hostname)"
`;

export function SubmitPage() {
  const { api, system, username, fail } = useApp();
  const [name, setName] = useState("hello");
  const [script, setScript] = useState(EXAMPLE);
  const [workdir, setWorkdir] = useState(`/home/${username}`);
  const [partition, setPartition] = useState("");
  const [parts, setParts] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  useEffect(() => {
    api.get(`/status/${enc(system)}/partitions`)
      .then((r) => setParts((r.partitions || []).map((p: any) => p.name)))
      .catch(() => setParts([]));
  }, [system]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const job: Record<string, unknown> = { name, script, workingDirectory: workdir };
      if (partition) job.partition = partition;
      const r = await api.json("POST", `/compute/${enc(system)}/jobs`, { job },
        { "Idempotency-Key": crypto.randomUUID() });
      go(`#/jobs/${r.jobId}`);
    } catch (err) {
      setError(fail(err));
      setBusy(false);
    }
  };

  return (
    <section>
      <h1>Submit a job</h1>
      <form onSubmit={submit} class="form">
        <label for="job-name">Name</label>
        <input id="job-name" value={name} required maxLength={200} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        <label for="job-workdir">Working directory</label>
        <input id="job-workdir" value={workdir} required onInput={(e) => setWorkdir((e.target as HTMLInputElement).value)} />
        <label for="job-partition">Partition</label>
        <select id="job-partition" value={partition} onChange={(e) => setPartition((e.target as HTMLSelectElement).value)}>
          <option value="">Default</option>
          {parts.map((p) => <option value={p}>{p}</option>)}
        </select>
        <label for="job-script">Batch script</label>
        <textarea id="job-script" rows={10} spellcheck={false} value={script} required onInput={(e) => setScript((e.target as HTMLTextAreaElement).value)} />
        <Err text={error} />
        <button class="primary" type="submit" disabled={busy}>{busy ? "Submitting…" : "Submit"}</button>
      </form>
    </section>
  );
}

function jobIdOf(t: any): string | undefined {
  return t?.metadata?.jobId || t?.result?.jobId;
}

export function JobPage({ jobId }: { jobId: string }) {
  const { api, auth, system, fail } = useApp();
  const [job, setJob] = useState<any>();
  const [live, setLive] = useState("");
  const [liveNote, setLiveNote] = useState("Connecting for live updates…");
  const [output, setOutput] = useState<string | null>(null);
  const [outputNote, setOutputNote] = useState("");
  const [error, setError] = useState("");
  const [done, setDone] = useState(false);
  const [missing, setMissing] = useState(false);
  const base = `/compute/${enc(system)}/jobs/${enc(jobId)}`;
  const mounted = useRef(true);

  const loadJob = async () => {
    try {
      const r = await api.get(base);
      if (mounted.current) setJob(r.jobs?.[0]);
    } catch (e) {
      if (!mounted.current) return;
      if (e instanceof ApiError && e.status === 404) setMissing(true);
      setError(e instanceof ApiError && e.status === 404
        ? `Job ${jobId} was not found on ${system}: it does not exist or belongs to someone else.` : fail(e));
    }
  };

  const loadOutput = async () => {
    try {
      const md = (await api.get(`${base}/metadata`)).jobs?.[0];
      const path = md?.standardOutput;
      if (!path) return setOutputNote("This job has no output file.");
      const r = await api.get(`/filesystem/${enc(system)}/ops/view`, { path });
      setOutput(r.output ?? "");
      setOutputNote(`Output of ${path}`);
    } catch (e) {
      setOutputNote(`The output cannot be shown: ${fail(e)}`);
    }
  };

  useEffect(() => {
    mounted.current = true;
    const ctl = new AbortController();
    loadJob();
    (async () => {
      try {
        const tasks = await api.get("/tasks", { kind: "job", pageSize: "100" });
        const task = (tasks.tasks || []).find((t: any) => jobIdOf(t) === jobId);
        if (!task) {
          setLiveNote("Live updates are not available for this job.");
          return;
        }
        setLiveNote("Live: the state below changes by itself.");
        await watchTask(auth, api.base, task.id, (t: Task) => {
          const state = String(t.metadata?.jobState || stateName(t.state));
          setLive(state);
          if (t.done) {
            setDone(true);
            setLiveNote("The job has finished.");
            loadJob();
            loadOutput();
          }
        }, ctl.signal);
      } catch (e) {
        if (!ctl.signal.aborted) setLiveNote(messageOf(e));
      }
    })();
    return () => {
      mounted.current = false;
      ctl.abort();
    };
  }, [jobId, system]);

  const cancel = async () => {
    try {
      await api.json("DELETE", base);
      setLiveNote("Cancellation requested.");
    } catch (e) {
      setError(fail(e));
    }
  };

  const state = live || job?.status?.state || "";
  return (
    <section>
      <h1>Job {jobId}</h1>
      <p><a href="#/jobs">← All jobs</a></p>
      <Err text={error} />
      {!missing && <div class="card">
        <p aria-live="polite">
          State: <strong data-testid="job-state">{state || "…"}</strong>
        </p>
        <p class="muted" data-testid="live-note">{liveNote}</p>
        {job && (
          <dl>
            <dt>Name</dt><dd>{job.name}</dd>
            <dt>Partition</dt><dd>{job.partition}</dd>
            <dt>Exit code</dt><dd>{job.status?.exitCode ?? ""}</dd>
            <dt>Working directory</dt><dd>{job.workingDirectory}</dd>
          </dl>
        )}
        <div class="toolbar">
          {!done && <button onClick={cancel}>Cancel job</button>}
          <button onClick={loadOutput}>Show output</button>
        </div>
      </div>}
      {(output !== null || outputNote) && (
        <div class="card">
          <h2>Output</h2>
          <p class="muted">{outputNote}</p>
          {output !== null && <pre data-testid="job-output">{output}</pre>}
        </div>
      )}
    </section>
  );
}

// ------------------------------------------------------------------ tasks
export function TasksPage() {
  const { api, fail } = useApp();
  const [data, error, reload] = useLoad(() => api.get("/tasks", { pageSize: "100" }), []);
  const [actionError, setActionError] = useState("");
  const act = async (method: string, path: string) => {
    try {
      setActionError("");
      await api.json(method, path, method === "POST" ? {} : undefined);
      reload();
    } catch (e) {
      setActionError(fail(e));
    }
  };
  const tasks: any[] = data?.tasks || [];
  return (
    <section>
      <h1>Tasks</h1>
      <p class="muted">Every job and every large transfer is a task.</p>
      <div class="toolbar"><button onClick={reload}>Refresh</button></div>
      <Err text={error || actionError} />
      {data && !tasks.length && <p>You have no tasks.</p>}
      {tasks.length > 0 && (
        <div class="table-wrap">
          <table data-testid="tasks">
            <thead><tr><th scope="col">Kind</th><th scope="col">State</th><th scope="col">What</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {tasks.map((t) => (
                <tr>
                  <td>{t.kind}</td>
                  <td><Badge state={String(t.state || "").replace("TASK_STATE_", "")} /></td>
                  <td>{jobIdOf(t) ? <a href={`#/jobs/${jobIdOf(t)}`}>job {jobIdOf(t)}</a>
                    : t.metadata?.targetPath || t.metadata?.sourcePath || t.metadata?.path || ""}</td>
                  <td>{formatTime(t.createTime)}</td>
                  <td>
                    {!t.done && <button onClick={() => act("POST", `/tasks/${t.id}:cancel`)}>Cancel</button>}
                    {t.done && <button onClick={() => act("DELETE", `/tasks/${t.id}`)}>Forget</button>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
