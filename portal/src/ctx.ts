import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "./api";
import type { Auth } from "./auth";

export interface Ctx {
  auth: Auth;
  api: Api;
  system: string;
  username: string;
  /** Show an error: a session that ended sends the user back to the sign-in screen. */
  fail: (e: unknown) => string;
}

export const AppContext = createContext<Ctx>(null as unknown as Ctx);
export const useApp = () => useContext(AppContext);

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

