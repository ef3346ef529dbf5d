// Worker threads terminated while secvit work is pending or running: the worker ends, the process
// lives. Each case runs in a child process (an abort there fails the test instead of killing the
// test runner), with a worker that queues or runs ops and is terminated (or exits) mid-way.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..');

const WORKER = (mode: string) => `
const s = require(${JSON.stringify(resolve(root, 'dist/cjs/index.js'))});
const { parentPort } = require('node:worker_threads');
const a = s.tensor(new Float32Array(384 * 384).fill(1), [384, 384]);
const mode = ${JSON.stringify(mode)};
if (mode === 'sync') { parentPort.postMessage('go'); for (;;) s.matmulSync(a, a).dispose(); }
if (mode === 'async') { for (let i = 0; i < 30; i++) s.matmul(a, a); s.matmul(a, a).data(); parentPort.postMessage('go'); }
if (mode === 'to') { const e = s.tensor(new Float32Array(384 * 384).fill(2), [384, 384], { device: 'cuda-emu' }); for (let i = 0; i < 4; i++) s.matmul(e, e); s.matmul(e, e).to('cpu'); parentPort.postMessage('go'); }
if (mode === 'data-sync') { parentPort.postMessage('go'); for (;;) { const p = s.matmul(a, a); p.dataSync(); p.dispose(); } }
if (mode === 'exit') { for (let i = 0; i < 30; i++) s.matmul(a, a); s.matmul(a, a).data(); process.exit(0); }
`;

function runCase(mode: string): { code: number | null; out: string; err: string } {
  const main = `
const { Worker } = require('node:worker_threads');
const w = new Worker(${JSON.stringify(WORKER(mode))}, { eval: true });
w.on('message', () => setTimeout(() => w.terminate(), 20));
w.on('error', (e) => console.log('worker error: ' + e.message));
w.on('exit', () => {
  // The process still works: secvit in the main thread, after the worker is gone.
  const s = require(${JSON.stringify(resolve(root, 'dist/cjs/index.js'))});
  const t = s.tensor([1, 2, 3, 4], [2, 2]);
  const p = s.matmulSync(t, t);
  console.log('alive ' + Array.from(p.dataSync()).join(','));
});`;
  const r = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('terminating workers', () => {
  it.each(['sync', 'async', 'to', 'data-sync', 'exit'])('a worker ended during %s work leaves the process running', (mode) => {
    const r = runCase(mode);
    expect(r.err).not.toMatch(/terminate called|Aborted|FATAL/);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('alive 7,10,15,22');
  });
});
