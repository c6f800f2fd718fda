// OIDC for a public client: authorization code + PKCE (S256), refresh tokens, RP-initiated logout.
// Tokens live in sessionStorage (this tab only); the refresh token is rotated on every use.

export interface PortalConfig {
  issuer: string;
  clientId: string;
  scope: string;
  redirectUri: string;
  gateway: string;
}

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
  userinfo_endpoint?: string;
  end_session_endpoint?: string;
}

interface Tokens {
  accessToken: string;
  refreshToken?: string;
  idToken?: string;
  expiresAt: number; // ms since epoch
}

export interface User {
  username: string;
  name?: string;
  email?: string;
}

const TOKENS = "f7t.tokens";
const PENDING = "f7t.pending";
// refresh this long before the access token expires (ms)
const REFRESH_MARGIN = 5000;

export class SessionEnded extends Error {
  constructor(message = "Your session has ended. Please sign in again.") {
    super(message);
  }
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  bytes.forEach((b) => (s += String.fromCharCode(b)));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(n = 32): string {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function s256(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return b64url(new Uint8Array(digest));
}

function decodeJwt(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(decodeURIComponent(escape(json)));
}

async function oauthError(r: Response): Promise<string> {
  try {
    const body = await r.json();
    return body.error_description || body.error || `HTTP ${r.status}`;
  } catch {
    return `HTTP ${r.status}`;
  }
}

export class Auth {
  private discovery?: Discovery;
  private refreshing?: Promise<Tokens>;
  onChange: () => void = () => {};

  constructor(readonly config: PortalConfig) {}

  private async meta(): Promise<Discovery> {
    if (!this.discovery) {
      let r: Response;
      try {
        r = await fetch(`${this.config.issuer}/.well-known/openid-configuration`);
      } catch {
        throw new Error("The sign-in service cannot be reached. Try again in a moment.");
      }
      if (!r.ok) throw new Error("The sign-in service is not answering properly. Try again in a moment.");
      this.discovery = (await r.json()) as Discovery;
    }
    return this.discovery;
  }

  private get tokens(): Tokens | null {
    const raw = sessionStorage.getItem(TOKENS);
    return raw ? (JSON.parse(raw) as Tokens) : null;
  }

  private set tokens(t: Tokens | null) {
    if (t) sessionStorage.setItem(TOKENS, JSON.stringify(t));
    else sessionStorage.removeItem(TOKENS);
    this.onChange();
  }

  get signedIn(): boolean {
    return this.tokens !== null;
  }

  get user(): User | null {
    const t = this.tokens;
    if (!t) return null;
    const c = decodeJwt(t.idToken || t.accessToken);
    return {
      username: String(c.preferred_username ?? c.sub),
      name: c.name as string | undefined,
      email: c.email as string | undefined,
    };
  }

  /** Send the browser to the issuer's login form. */
  async login(): Promise<void> {
    const meta = await this.meta();
    const verifier = randomString(48);
    const state = randomString(16);
    const nonce = randomString(16);
    sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce }));
    const params = new URLSearchParams({
      response_type: "code",
      client_id: this.config.clientId,
      redirect_uri: this.config.redirectUri,
      scope: this.config.scope,
      state,
      nonce,
      code_challenge: await s256(verifier),
      code_challenge_method: "S256",
    });
    location.assign(`${meta.authorization_endpoint}?${params}`);
  }

  /** Finish a login if the URL carries the issuer's answer; true if it did. */
  async completeLogin(): Promise<boolean> {
    const q = new URLSearchParams(location.search);
    if (!q.has("code") && !q.has("error")) return false;
    history.replaceState(null, "", location.pathname + location.hash);
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
    sessionStorage.removeItem(PENDING);
    if (q.has("error")) throw new Error(`Sign-in was refused: ${q.get("error_description") || q.get("error")}`);
    if (!pending || pending.state !== q.get("state")) {
      throw new Error("This sign-in answer does not belong to this browser tab. Please sign in again.");
    }
    const meta = await this.meta();
    const r = await fetch(meta.token_endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: q.get("code") || "",
        redirect_uri: this.config.redirectUri,
        client_id: this.config.clientId,
        code_verifier: pending.verifier,
      }),
    });
    if (!r.ok) throw new Error(`Sign-in failed: ${await oauthError(r)}`);
    const t = this.store(await r.json());
    if (t.idToken && decodeJwt(t.idToken).nonce !== pending.nonce) {
      this.tokens = null;
      throw new Error("Sign-in failed: the identity token does not match this sign-in.");
    }
    return true;
  }

  private store(body: Record<string, unknown>): Tokens {
    const old = this.tokens;
    const t: Tokens = {
      accessToken: String(body.access_token),
      refreshToken: (body.refresh_token as string | undefined) ?? old?.refreshToken,
      idToken: (body.id_token as string | undefined) ?? old?.idToken,
      expiresAt: Date.now() + Number(body.expires_in ?? 60) * 1000,
    };
    this.tokens = t;
    return t;
  }

  /** A valid access token, refreshed first when it is about to expire (or when `force`). */
  async accessToken(force = false): Promise<string> {
    const t = this.tokens;
    if (!t) throw new SessionEnded("Please sign in.");
    if (!force && t.expiresAt - Date.now() > REFRESH_MARGIN) return t.accessToken;
    this.refreshing ??= this.refresh(t).finally(() => (this.refreshing = undefined));
    return (await this.refreshing).accessToken;
  }

  private async refresh(t: Tokens): Promise<Tokens> {
    if (!t.refreshToken) {
      this.tokens = null;
      throw new SessionEnded();
    }
    const meta = await this.meta();
    let r: Response;
    try {
      r = await fetch(meta.token_endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: t.refreshToken,
          client_id: this.config.clientId,
        }),
      });
    } catch {
      throw new Error("The sign-in service cannot be reached to renew your session. Try again in a moment.");
    }
    if (!r.ok) {
      this.tokens = null;
      throw new SessionEnded();
    }
    return this.store(await r.json());
  }

  /** End the session here and at the issuer, then come back to the portal. */
  async logout(): Promise<void> {
    const t = this.tokens;
    this.tokens = null;
    const meta = await this.meta().catch(() => null);
    if (meta?.end_session_endpoint) {
      const params = new URLSearchParams({
        client_id: this.config.clientId,
        post_logout_redirect_uri: this.config.redirectUri,
      });
      if (t?.idToken) params.set("id_token_hint", t.idToken);
      location.assign(`${meta.end_session_endpoint}?${params}`);
    }
  }
}
