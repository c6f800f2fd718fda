// The portal's shell: configuration, sign-in, navigation, and the page for the current route.
import { render } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { Api } from "./api";
import { Auth, SessionEnded, type PortalConfig } from "./auth";
import { AppContext, messageOf, type Ctx } from "./ctx";
import { FilesPage } from "./files";
import { JobPage, JobsPage, SubmitPage, SystemsPage, TasksPage } from "./pages";
import { useRoute } from "./util";

function SignIn({ auth, message }: { auth: Auth; message?: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  return (
    <main class="signin">
      <h1>FirecREST portal</h1>
      <p>Run jobs and manage your files on the centre's systems.</p>
      {message && <p class="notice" role="status">{message}</p>}
      {error && <p class="error" role="alert">{error}</p>}
      <button
        class="primary"
        disabled={busy}
        onClick={() => {
          setBusy(true);
          auth.login().catch((e) => {
            setError(messageOf(e));
            setBusy(false);
          });
        }}
      >
        Sign in
      </button>
    </main>
  );
}

const NAV = [
  ["systems", "Systems"],
  ["jobs", "Jobs"],
  ["submit", "Submit a job"],
  ["files", "Files"],
  ["tasks", "Tasks"],
] as const;

function Shell({ auth, api, onEnded }: { auth: Auth; api: Api; onEnded: (m: string) => void }) {
  const route = useRoute();
  const user = auth.user!;
  const [systems, setSystems] = useState<string[]>([]);
  const [system, setSystem] = useState(localStorage.getItem("f7t.system") || "");
  const [error, setError] = useState("");

  const fail = (e: unknown) => {
    if (e instanceof SessionEnded) onEnded(e.message);
    return messageOf(e);
  };

  useEffect(() => {
    api.get("/status/systems").then((r) => {
      const names: string[] = (r.systems || []).map((s: { name: string }) => s.name);
      setSystems(names);
      if (!names.includes(system) && names.length) setSystem(names[0]);
    }).catch((e) => setError(fail(e)));
  }, []);

  useEffect(() => {
    if (system) localStorage.setItem("f7t.system", system);
  }, [system]);

  const ctx = useMemo<Ctx>(() => ({ auth, api, system, username: user.username, fail }), [system, user.username]);
  const page = (() => {
    if (!system) return <p class="loading">Loading systems…</p>;
    switch (route.page) {
      case "jobs":
        return route.arg ? <JobPage key={route.arg} jobId={route.arg} /> : <JobsPage />;
      case "submit":
        return <SubmitPage />;
      case "files":
        return <FilesPage path={route.query.get("path") || ""} />;
      case "tasks":
        return <TasksPage />;
      default:
        return <SystemsPage />;
    }
  })();

  return (
    <AppContext.Provider value={ctx}>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header>
        <div class="brand">FirecREST portal</div>
        <nav aria-label="Main">
          {NAV.map(([id, label]) => (
            <a href={`#/${id}`} aria-current={route.page === id ? "page" : undefined}>{label}</a>
          ))}
        </nav>
        <div class="who">
          {systems.length > 1 && (
            <label>
              System{" "}
              <select value={system} onChange={(e) => setSystem((e.target as HTMLSelectElement).value)}>
                {systems.map((s) => <option value={s}>{s}</option>)}
              </select>
            </label>
          )}
          {systems.length === 1 && <span class="sys">System: {system}</span>}
          <span class="user" title={user.email || ""} data-testid="user">{user.name || user.username} ({user.username})</span>
          <button onClick={() => auth.logout()}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {error && <p class="error" role="alert">{error}</p>}
        {page}
      </main>
    </AppContext.Provider>
  );
}

function App({ config }: { config: PortalConfig }) {
  const auth = useMemo(() => new Auth(config), [config]);
  const api = useMemo(() => new Api(auth, config.gateway || location.origin), [auth]);
  const [phase, setPhase] = useState<"loading" | "out" | "in">("loading");
  const [message, setMessage] = useState<string | undefined>();

  useEffect(() => {
    auth.completeLogin()
      .then(() => setPhase(auth.signedIn ? "in" : "out"))
      .catch((e) => {
        setMessage(messageOf(e));
        setPhase("out");
      });
  }, []);

  if (phase === "loading") return <p class="loading">Signing in…</p>;
  if (phase === "out" || !auth.signedIn) return <SignIn auth={auth} message={message} />;
  return <Shell auth={auth} api={api} onEnded={(m) => { setMessage(m); setPhase("out"); }} />;
}

async function start() {
  const root = document.getElementById("app")!;
  try {
    const r = await fetch("/portal/config.json", { cache: "no-cache" });
    if (!r.ok) throw new Error();
    render(<App config={await r.json()} />, root);
  } catch {
    root.innerHTML = '<p class="error" role="alert">The portal is not configured (config.json is missing).</p>';
  }
}

start();
