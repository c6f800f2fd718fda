import { useEffect, useState } from "preact/hooks";

export interface Route {
  page: string;
  arg?: string;
  query: URLSearchParams;
}

export function parseHash(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?", 2);
  const [page, ...rest] = (path || "systems").split("/");
  return { page, arg: rest.length ? decodeURIComponent(rest.join("/")) : undefined, query: new URLSearchParams(qs || "") };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

export function go(hash: string): void {
  location.hash = hash;
}

export function formatSize(n: number | string | undefined): string {
  const v = Number(n ?? 0);
  if (v < 1024) return `${v} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let x = v;
  let i = -1;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x.toFixed(x < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatTime(t: number | string | undefined | null): string {
  if (t === undefined || t === null || t === "" || t === 0 || t === "0") return "";
  const d = typeof t === "number" || /^\d+$/.test(String(t)) ? new Date(Number(t) * 1000) : new Date(String(t));
  return isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

export function parentOf(path: string): string {
  const p = path.replace(/\/+$/, "");
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** XMLHttpRequest, for the progress events fetch does not give on uploads. */
export function xhr(
  method: string, url: string, body: Blob | string | null, onProgress: (loaded: number) => void,
  responseType: XMLHttpRequestResponseType = "text",
): Promise<XMLHttpRequest> {
  return new Promise((resolve, reject) => {
    const r = new XMLHttpRequest();
    r.open(method, url);
    r.responseType = responseType;
    const target = method === "GET" ? r : r.upload;
    target.onprogress = (e) => onProgress(e.loaded);
    r.onload = () => (r.status >= 200 && r.status < 300 ? resolve(r)
      : reject(new Error(`The storage service refused the transfer (HTTP ${r.status}).`)));
    r.onerror = () => reject(new Error("The storage service cannot be reached; the transfer stopped."));
    r.send(body);
  });
}
