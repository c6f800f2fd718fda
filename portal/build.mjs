// Bundle the portal: src/main.tsx -> <out>/app.js, src/app.css -> <out>/app.css, src/index.html.
// Usage: node build.mjs <out-dir>   (devstack/portal.py runs it after generating gen/ stubs)
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2] || "dist";
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: ["es2022"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: out,
  logLevel: "warning",
  legalComments: "none",
});
await build({ entryPoints: { app: "src/app.css" }, bundle: true, minify: true, outdir: out, logLevel: "warning" });
copyFileSync("src/index.html", join(out, "index.html"));
