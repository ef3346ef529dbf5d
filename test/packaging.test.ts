// The package loads as ESM and as CommonJS (from dist/, built by `npm install`), and in worker
// threads, where the synchronous ops are meant to be used.
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// npm's own policy for dependencies' install scripts (package.json "allowScripts"), where npm has it.
const npmHasAllowScripts = spawnSync('npm', ['approve-scripts', '--help'], { encoding: 'utf8' }).status === 0;

function run(args: string[]): string {
  return execFileSync(process.execPath, args, { encoding: 'utf8', cwd: process.cwd() }).trim();
}

describe('packaging', () => {
  it('loads from CommonJS with require()', () => {
    const out = run(['-e', `const s = require('secvit'); const t = s.tensor([1,2,3,4],[2,2]); const p = s.matmulSync(t,t); console.log(Array.from(p.dataSync()).join(',')); p.dispose(); t.dispose(); console.log(s.memory().tensors)`]);
    expect(out.split('\n')).toEqual(['7,10,15,22', '0']);
  });

  it('loads as ESM with import', () => {
    const out = run(['--input-type=module', '-e', `import { tensor, backends } from 'secvit'; const t = tensor([1,2],[2]); console.log(t.shape.join('x'), backends()[0].name); t.dispose();`]);
    expect(out).toBe('2 cpu');
  });

  it('runs in worker threads, with the native pool shared', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const code = "const s = require('secvit'); const { parentPort } = require('node:worker_threads');" +
        "const t = s.tensor([1,2,3,4],[2,2]); const p = s.matmulSync(t,t);" +
        "parentPort.postMessage(Array.from(p.dataSync()).join(',')); p.dispose(); t.dispose();";
      const results = [];
      let done = 0;
      for (let i = 0; i < 3; i++) {
        const w = new Worker(code, { eval: true });
        w.on('message', (m) => results.push(m));
        w.on('error', (e) => { console.log('error ' + e.message); process.exitCode = 1; });
        w.on('exit', () => { if (++done === 3) console.log(results.join(';')); });
      }`;
    expect(run(['-e', script])).toBe('7,10,15,22;7,10,15,22;7,10,15,22');
  });

  // Issue 21, item 7: a project .npmrc key (onnxruntime-node-install=skip) made npm warn
  // "Unknown project config" on every command. package.json's allowScripts denies the download
  // (onnxruntime-node's CPU build ships in its npm package) without a warning.
  it.skipIf(!npmHasAllowScripts)('npm warns about no project config, and onnxruntime-node downloads nothing', () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|ONNXRUNTIME_NODE_INSTALL)/i.test(k)));
    const r = spawnSync('npm', ['rebuild', 'onnxruntime-node', '--foreground-scripts'], { encoding: 'utf8', cwd: process.cwd(), env });
    const said = `${r.stdout}${r.stderr}`;
    expect(said).not.toMatch(/Unknown (project|user|env) config/);
    // Not denied, its script tries to download CUDA providers from NuGet: unreachable, it fails.
    expect(r.status, said).toBe(0);
    expect(said).not.toMatch(/script\/install/);
  });
});

