// The README's examples run "from a project that installed secvit": a temporary folder whose
// node_modules/secvit is this repository (a symlink, as `npm link` makes), so `import 'secvit'`
// resolves to the package (dist/) and 'node_modules/secvit/samples/...' paths are the shipped
// files. The examples write their outputs (copy.safetensors) there.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** A fresh user project; `dispose()` removes it. */
export function userProject(): { dir: string; dispose(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'secvit-user-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(REPO, join(dir, 'node_modules', 'secvit'), 'dir');
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The ```js (and ```ts) blocks of README.md with the heading above each and their language. */
export function readmeBlocks(): { section: string; code: string; lang: string }[] {
  const lines = readFileSync(join(REPO, 'README.md'), 'utf8').split('\n');
  const out: { section: string; code: string; lang: string }[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    if (/^#{1,4} /.test(lines[i])) section = lines[i].replace(/^#+ /, '');
    const fence = /^```(ts|typescript|js|javascript)\s*$/.exec(lines[i]);
    if (fence) {
      const start = i + 1;
      while (i < lines.length - 1 && lines[++i] !== '```');
      out.push({ section, code: lines.slice(start, i).join('\n'), lang: fence[1] });
    }
  }
  return out;
}
