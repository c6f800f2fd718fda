// The gateway's REST surface (FirecREST v2 paths), with errors turned into sentences for people.
import { Auth, SessionEnded } from "./auth";

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

function friendly(status: number, detail: string): string {
  const d = detail ? ` (${detail})` : "";
  if (status === 400) return `The request was not accepted${d}.`;
  if (status === 401) return "Your session has expired. Please sign in again.";
  if (status === 403) return `You are not allowed to do this${d}.`;
  if (status === 404) return `Not found${d}.`;
  if (status === 408 || status === 504) return `The cluster took too long to answer${d}. Try again.`;
  if (status === 413) return `That is too large${d}.`;
  if (status === 503 || status === 502) return `The cluster cannot be reached right now${d}. Try again shortly.`;
  return `Something went wrong on the gateway (error ${status})${d}.`;
}

export async function errorOf(r: Response): Promise<ApiError> {
  let detail = "";
  try {
    const body = await r.json();
    detail = body.message || body.error_description || "";
  } catch {
    /* not JSON */
  }
  return new ApiError(friendly(r.status, detail), r.status);
}

export class Api {
  constructor(readonly auth: Auth, readonly base: string) {}

  /** fetch with the access token; a 401 gets one retry with a refreshed token. */
  async raw(method: string, path: string, init: RequestInit = {}): Promise<Response> {
    const go = async (force: boolean) => {
      const token = await this.auth.accessToken(force);
      const headers = new Headers(init.headers);
      headers.set("Authorization", `Bearer ${token}`);
      try {
        return await fetch(this.base + path, { ...init, method, headers });
      } catch {
        throw new ApiError("The gateway cannot be reached. Check your connection and try again.", 0);
      }
    };
    let r = await go(false);
    // a read is asked again while the gateway is briefly unavailable (e.g. the core restarting)
    for (let i = 1; i <= 3 && method === "GET" && [502, 503, 504].includes(r.status); i++) {
      await new Promise((done) => setTimeout(done, 1000 * i));
      r = await go(false);
    }
    if (r.status === 401) {
      r = await go(true);
      if (r.status === 401) throw new SessionEnded();
    }
    if (!r.ok) throw await errorOf(r);
    return r;
  }

  async json<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const init: RequestInit = { headers: { ...headers } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["Content-Type"] = "application/json";
    }
    const r = await this.raw(method, path, init);
    return r.status === 204 ? (undefined as T) : ((await r.json()) as T);
  }

  get<T = any>(path: string, query: Record<string, string | undefined> = {}): Promise<T> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") q.set(k, v);
    const qs = q.toString();
    return this.json<T>("GET", qs ? `${path}?${qs}` : path);
  }
}

export const enc = encodeURIComponent;
