// Builds the web page into dist/ui/ (app.js, app.css, index.html, favicon.svg): the client under
// src/ui/client/ bundled with uPlot by esbuild. Run by `npm run build:ui` (and build/prepare);
// an argument names another output directory.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const client = `${root}src/ui/client/`;
const out = process.argv[2] ? `${process.argv[2].replace(/\/$/, '')}/` : `${root}dist/ui/`;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: { app: `${client}main.ts` },
  outdir: out,
  bundle: true,
  format: 'esm',
  target: ['es2022', 'chrome111', 'firefox113', 'safari16.4'],
  minify: true,
  legalComments: 'eof',
  tsconfig: `${client}tsconfig.json`,
  metafile: true,
  logLevel: 'warning',
});
for (const f of ['index.html', 'favicon.svg']) copyFileSync(`${client}${f}`, `${out}${f}`);
const sizes = Object.entries(result.metafile.outputs).map(([f, o]) => `${f.slice(f.lastIndexOf('/') + 1)} ${(o.bytes / 1024).toFixed(1)} KiB`);
console.log(`web page built in ${out}: ${sizes.join(', ')}`);
