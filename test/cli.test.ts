// The `secvit` command line, run as users run it (node bin/secvit.mjs in a child process):
// results on stdout, one-line errors on stderr, exit codes 0 / 1 (failure) / 2 (usage).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors, SecViT } from '../lib/index.js';

const ROOT = resolve(__dirname, '..');
const FIX = resolve(__dirname, 'fixtures');
const MICRO = join(FIX, 'micro.model.safetensors');
const tmp = mkdtempSync(join(tmpdir(), 'secvit-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bin', 'secvit.mjs'), ...args], { encoding: 'utf8', cwd: tmp, env: { ...process.env, SECVIT_POISON: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('secvit CLI', () => {
  it('--help lists the commands; each command has its own --help', () => {
    const top = cli('--help');
    expect(top.code).toBe(0);
    for (const c of ['classify', 'convert', 'info', 'bench']) expect(top.out).toContain(c);
    const c = cli('classify', '--help');
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/usage: secvit classify <images\.\.\.> --weights FILE/);
    const b = cli('bench', '--help');
    expect(b.code).toBe(0);
    expect(b.out).toMatch(/usage: secvit bench/);
  });

  it('unknown commands and options, and bad values: exit 2, one line, no stack trace', () => {
    for (const [args, msg] of [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['classify', 'x.png', '--weights', MICRO, '--colour'], /unknown option '--colour'/],
      [['classify', 'x.png', '--weights', MICRO, '--top-k', 'many'], /--top-k expects an integer >= 1, got 'many'/],
      [['classify', 'x.png', '--weights', MICRO, '--device', 'tpu'], /--device expects one of auto, cpu, cuda, cuda-emu, got 'tpu'/],
      [['classify', 'x.png'], /--weights FILE is required/],
      [['convert', 'only-one.pth'], /expects <in.pth> <out.safetensors>/],
      [['bench', '--groups', 'nope'], /--groups expects some of/],
      [['bench', '--frobnicate'], /unknown option '--frobnicate'/],
    ] as const) {
      const r = cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.err.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.out).toBe('');
    }
  });

  it('classify --json: exactly one JSON array on stdout, an entry per image', () => {
    const images = [join(FIX, 'images', 'landscape.png'), join(FIX, 'images', 'anim.gif')];
    const r = cli('classify', ...images, '--weights', MICRO, '--top-k', '2', '--device', 'cpu', '--json');
    expect(r.code, r.err).toBe(0);
    const parsed = JSON.parse(r.out) as { image: string; predictions: { index: number; label: string; score: number }[] }[];
    expect(parsed.map((p) => p.image)).toEqual(images);
    for (const p of parsed) {
      expect(p.predictions).toHaveLength(2);
      expect(p.predictions[0].score).toBeGreaterThanOrEqual(p.predictions[1].score);
      expect(Object.keys(p.predictions[0]).sort()).toEqual(['index', 'label', 'score']);
    }
    // Piped, not a TTY: nothing on stderr either.
    expect(r.err).toBe('');
    const table = cli('classify', images[0], '--weights', MICRO, '--device', 'cpu');
    expect(table.code).toBe(0);
    expect(table.out.split('\n')[0]).toBe(images[0]);
    expect(table.out).toMatch(/%\s+\d+\s+class \d/);
  });

  it('failures exit 1 with one line naming the problem; --verbose adds the stack', () => {
    const missing = cli('classify', join(FIX, 'images', 'nope.png'), '--weights', MICRO, '--device', 'cpu');
    expect(missing.code).toBe(1);
    expect(missing.err.trim().split('\n')).toHaveLength(1);
    expect(missing.err).toMatch(/cannot decode '.*nope.png'/);
    const verbose = cli('classify', join(FIX, 'images', 'nope.png'), '--weights', MICRO, '--device', 'cpu', '--verbose');
    expect(verbose.code).toBe(1);
    expect(verbose.err).toMatch(/\n\s+at /);
    const badWeights = cli('classify', join(FIX, 'images', 'small.png'), '--weights', join(FIX, 'images', 'small.png'));
    expect(badWeights.code).toBe(1);
    expect(badWeights.err.trim().split('\n')).toHaveLength(1);
  });

  it('convert: a training .pth to safetensors with config and provenance; it loads the same weights', () => {
    const out = join(tmp, 'micro.safetensors');
    const r = cli('convert', join(FIX, 'micro_train.pth'), out);
    expect(r.code, r.err).toBe(0);
    const meta = readSafetensors(out).metadata;
    expect(meta.get('source')).toBe('micro_train.pth');
    expect(meta.get('source_key')).toBe('model_ema');
    expect(meta.get('source_sha256')).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(meta.get('config')!).embed_dims).toEqual([8, 16, 16, 32]);
    using a = SecViT.load(out);
    using b = SecViT.load(join(FIX, 'micro_train.pth'));
    for (const [name, t] of a.stateDict()) expect(Array.from(t.dataSync()), name).toEqual(Array.from(b.stateDict().get(name)!.dataSync()));
  });

  it('info: version, backends with reasons, JSON on request', () => {
    const r = cli('info', '--json');
    expect(r.code).toBe(0);
    const info = JSON.parse(r.out) as { secvit: string; backends: { name: string; available: boolean; reason?: string }[] };
    expect(info.secvit).toMatch(/^\d+\.\d+\.\d+/);
    expect(info.backends.map((b) => b.name)).toEqual(['cpu', 'cuda', 'cuda-emu']);
    for (const b of info.backends) if (!b.available) expect(b.reason).toBeTruthy();
    const text = cli('info');
    expect(text.out).toMatch(/^secvit \d/);
  });
});
