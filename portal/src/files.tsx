// File browser: list, view, mkdir, rm, upload and download (direct when small, staged through S3
// with a progress bar when large).
import { useEffect, useState } from "preact/hooks";
import { ApiError, enc } from "./api";
import { stateName, watchTask, type Task } from "./grpc";
import { useApp } from "./ctx";
import { Err } from "./pages";
import { formatSize, formatTime, go, joinPath, parentOf, saveBlob, xhr } from "./util";

// above this size transfers go through the staging store (FirecREST's direct-transfer limit)
const DIRECT_LIMIT = 1024 * 1024;

interface Progress {
  label: string;
  done: number; // 0..1
}

export function FilesPage({ path }: { path: string }) {
  const { api, auth, system, username, fail } = useApp();
  const dir = path || `/home/${username}`;
  const [entries, setEntries] = useState<any[] | null>(null);
  const [error, setError] = useState("");
  const [notice, setNotice] = useState("");
  const [view, setView] = useState<{ path: string; text: string } | null>(null);
  const [newDir, setNewDir] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<Progress | null>(null);
  const ops = `/filesystem/${enc(system)}/ops`;
  const transfer = `/filesystem/${enc(system)}/transfer`;

  const list = async () => {
    setError("");
    try {
      const r = await api.get(`${ops}/ls`, { path: dir, showHidden: "false" });
      setEntries([...(r.output || [])].sort((a, b) =>
        (a.type === "d" ? 0 : 1) - (b.type === "d" ? 0 : 1) || a.name.localeCompare(b.name)));
    } catch (e) {
      setEntries([]);
      setError(e instanceof ApiError && e.status === 404 ? `The folder ${dir} does not exist.` : fail(e));
    }
  };
  useEffect(() => {
    setView(null);
    setNotice("");
    list();
  }, [dir, system]);

  const attempt = async (what: () => Promise<void>) => {
    setError("");
    setNotice("");
    try {
      await what();
    } catch (e) {
      setError(fail(e));
      setProgress(null);
    }
  };

  /** Follow a transfer task (pushed over gRPC-Web) until it is done; throw if it did not succeed. */
  const follow = async (taskId: string, label: string) => {
    let last: Task | undefined;
    const ctl = new AbortController();
    await watchTask(auth, api.base, taskId, (t) => {
      last = t;
      setProgress({ label: `${label} (${stateName(t.state).toLowerCase()})`, done: t.progress || 0.5 });
    }, ctl.signal);
    if (!last || stateName(last.state) !== "SUCCEEDED") {
      const why = last?.outcome.case === "error" ? last.outcome.value.message : "it did not finish";
      throw new Error(`The transfer on the cluster failed: ${why}.`);
    }
  };

  /** The transfer's task id: the private directory holding the transfer job's logs. */
  const taskIdOf = (body: any): string => {
    const dir = String(body.transferJob?.logs?.outputLog || "").split("/").slice(0, -1).pop() || "";
    if (/^[0-9a-f]{32}$/.test(dir)) return dir;
    throw new Error("The gateway did not say which task carries this transfer.");
  };

  const upload = () => attempt(async () => {
    if (!file) throw new Error("Choose a file to upload first.");
    const target = joinPath(dir, file.name);
    if (file.size <= DIRECT_LIMIT) {
      const form = new FormData();
      form.append("file", file, file.name);
      setProgress({ label: `Uploading ${file.name}`, done: 0.5 });
      await api.raw("POST", `${ops}/upload?path=${enc(dir)}`, { body: form });
    } else {
      const body = await api.json("POST", `${transfer}/upload`, {
        path: target, transferDirectives: { transferMethod: "s3", fileSize: file.size },
      });
      const td = body.transferDirectives;
      const partSize = Number(td.maxPartSize);
      const tags: string[] = [];
      let sent = 0;
      for (const [i, url] of (td.partsUploadUrls as string[]).entries()) {
        const part = file.slice(i * partSize, (i + 1) * partSize);
        const r = await xhr("PUT", url, part, (n) => setProgress({
          label: `Uploading ${file.name} to the staging area: ${formatSize(sent + n)} of ${formatSize(file.size)}`,
          done: (sent + n) / file.size,
        }));
        sent += part.size;
        tags.push(r.getResponseHeader("ETag") || "");
      }
      const xml = "<CompleteMultipartUpload>" + tags.map((t, i) =>
        `<Part><PartNumber>${i + 1}</PartNumber><ETag>${t}</ETag></Part>`).join("") + "</CompleteMultipartUpload>";
      await xhr("POST", td.completeUploadUrl, xml, () => {});
      setProgress({ label: `Moving ${file.name} into place on the cluster`, done: 1 });
      await follow(taskIdOf(body), `Moving ${file.name} into place`);
    }
    setProgress(null);
    setFile(null);
    const input = document.getElementById("upload-file") as HTMLInputElement | null;
    if (input) input.value = "";
    await list();
    setNotice(`Uploaded ${file.name} (${formatSize(file.size)}).`);
  });

  const download = (e: any) => attempt(async () => {
    const path = joinPath(dir, e.name);
    const size = Number(e.size);
    if (size <= DIRECT_LIMIT) {
      const r = await api.raw("GET", `${ops}/download?path=${enc(path)}`);
      saveBlob(await r.blob(), e.name);
    } else {
      const body = await api.json("POST", `${transfer}/download`, {
        sourcePath: path, transferDirectives: { transferMethod: "s3" },
      });
      setProgress({ label: `Preparing ${e.name} on the cluster`, done: 0 });
      await follow(taskIdOf(body), `Preparing ${e.name}`);
      const r = await xhr("GET", body.transferDirectives.downloadUrl, null, (n) => setProgress({
        label: `Downloading ${e.name}: ${formatSize(n)} of ${formatSize(size)}`, done: n / size,
      }), "blob");
      saveBlob(r.response as Blob, e.name);
    }
    setProgress(null);
    setNotice(`Downloaded ${e.name}.`);
  });

  const open = (e: any) => attempt(async () => {
    const path = joinPath(dir, e.name);
    if (e.type === "d") return go(`#/files?path=${enc(path)}`);
    const r = await api.get(`${ops}/view`, { path });
    setView({ path, text: r.output ?? "" });
  });

  const remove = (e: any) => attempt(async () => {
    const path = joinPath(dir, e.name);
    if (!confirm(`Delete ${path}${e.type === "d" ? " and everything in it" : ""}?`)) return;
    await api.json("DELETE", `${ops}/rm?path=${enc(path)}`);
    await list();
    setNotice(`Deleted ${e.name}.`);
  });

  const mkdir = (ev: Event) => {
    ev.preventDefault();
    attempt(async () => {
      if (!newDir.trim() || newDir.includes("/")) throw new Error("Give the new folder a name without '/'.");
      await api.json("POST", `${ops}/mkdir`, { sourcePath: joinPath(dir, newDir.trim()), parent: false });
      await list();
      setNotice(`Created folder ${newDir.trim()}.`);
      setNewDir("");
    });
  };

  return (
    <section>
      <h1>Files</h1>
      <form class="pathbar" onSubmit={(e) => { e.preventDefault(); go(`#/files?path=${enc((document.getElementById("path") as HTMLInputElement).value)}`); }}>
        <label for="path">Folder</label>
        <input id="path" key={dir} defaultValue={dir} />
        <button type="submit">Go</button>
        <button type="button" onClick={() => go(`#/files?path=${enc(parentOf(dir))}`)} disabled={dir === "/"}>Up</button>
      </form>
      <div class="actions">
        <form onSubmit={mkdir} class="inline">
          <label for="new-dir">New folder</label>
          <input id="new-dir" value={newDir} onInput={(e) => setNewDir((e.target as HTMLInputElement).value)} />
          <button type="submit">Create</button>
        </form>
        <form class="inline" onSubmit={(e) => { e.preventDefault(); upload(); }}>
          <label for="upload-file">Upload a file</label>
          <input id="upload-file" type="file" onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0] || null)} />
          <button type="submit" disabled={!file || !!progress}>Upload</button>
        </form>
      </div>
      {progress && (
        <div class="progress" role="status">
          <label for="progress-bar">{progress.label}</label>
          <progress id="progress-bar" max={1} value={progress.done} />
        </div>
      )}
      {notice && <p class="notice" role="status" data-testid="notice">{notice}</p>}
      <Err text={error} />
      {entries === null && <p class="loading">Loading…</p>}
      {entries && entries.length === 0 && !error && <p>This folder is empty.</p>}
      {entries && entries.length > 0 && (
        <div class="table-wrap">
          <table data-testid="files">
            <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col" class="wide">Modified</th><th scope="col">Actions</th></tr></thead>
            <tbody>
              {entries.map((e) => (
                <tr data-name={e.name}>
                  <td>
                    <button class="link" onClick={() => open(e)} aria-label={e.type === "d" ? `Open folder ${e.name}` : `View ${e.name}`}>
                      {e.name}{e.type === "d" ? "/" : ""}
                    </button>
                  </td>
                  <td>{e.type === "d" ? "" : formatSize(e.size)}</td>
                  <td class="wide">{formatTime(e.lastModified)}</td>
                  <td class="row-actions">
                    {e.type !== "d" && <button onClick={() => download(e)} aria-label={`Download ${e.name}`}>Download</button>}
                    <button onClick={() => remove(e)} aria-label={`Delete ${e.name}`}>Delete</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {view && (
        <div class="card">
          <h2>{view.path}</h2>
          <pre data-testid="file-view">{view.text}</pre>
          <button onClick={() => setView(null)}>Close</button>
        </div>
      )}
    </section>
  );
}
