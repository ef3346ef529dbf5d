// The `secvit` command line, run as users run it (node bin/secvit.mjs in a child process):
// results on stdout, one-line errors on stderr, exit codes 0 / 1 (failure) / 2 (usage). Progress
// bars need a terminal; `main()`'s `io.progress` (what a TTY on stderr gives) shows them here.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, progressBar } from '../lib/cli.js';
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
    for (const c of ['classify', 'convert', 'info', 'bench', 'train', 'eval']) expect(top.out).toContain(c);
    const c = cli('classify', '--help');
    expect(c.code).toBe(0);
    expect(c.out).toMatch(/usage: secvit classify <images\.\.\.> \[--weights FILE\]/);
    const t = cli('train', '--help');
    expect(t.code).toBe(0);
    for (const flag of ['--data', '--out', '--epochs', '--batch-size', '--lr', '--config', '--seed', '--limit', '--resume', '--finetune', '--threads', '--device', '--no-progress', '--mixup', '--ema', '--clip-grad'])
      expect(t.out, flag).toContain(flag);
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
      [['clusters', 'x.png', '-o', 'y.png'], /--weights FILE is required/],
      [['train', '--out', 'o'], /--data DIR is required/],
      [['train', '--data', 'd', '--out', 'o', '--epochs', '0'], /--epochs expects an integer >= 1, got '0'/],
      [['train', '--data', 'd', '--out', 'o', '--lr', 'fast'], /--lr expects a positive number, got 'fast'/],
      [['train', '--data', 'd', '--out', 'o', '--crop-scale', '2,1'], /--crop-scale expects A,B/],
      [['train', '--data', 'd', '--out', 'o', '--rand-augment', 'rand-z1'], /--rand-augment: .*unknown part 'z1'/],
      [['eval', '--json'], /--data DIR is required/],
      [['eval', '--data', 'd', '--split', 'dev'], /--split expects one of test, train/],
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

  it('piped (not a TTY): stdout holds nothing but the result, stderr nothing (no progress) for classify, clusters, convert', () => {
    const image = join(FIX, 'images', 'landscape.png');
    const png = join(tmp, 'piped.png');
    const st = join(tmp, 'piped.safetensors');
    const runs = {
      classify: cli('classify', image, '--weights', MICRO, '--device', 'cpu'),
      clusters: cli('clusters', image, '--weights', MICRO, '--device', 'cpu', '-o', png),
      convert: cli('convert', join(FIX, 'micro_train.pth'), st),
    };
    for (const [name, r] of Object.entries(runs)) {
      expect(r.code, `${name}: ${r.err}`).toBe(0);
      expect(r.err, name).toBe('');
      expect(r.out, name).not.toMatch(/\r|loading|\[[#.]+\]/);
    }
    expect(runs.classify.out.split('\n')).toHaveLength(1 + 5 + 1);
    expect(runs.clusters.out).toMatch(new RegExp(`^${png.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*\n$`));
    expect(runs.convert.out).toMatch(/^.*piped\.safetensors: [\d,]+ parameters, config .*\n$/);
  });

  it('progressBar: one line of the terminal width; a long label keeps its end after an ellipsis, a short one is whole', () => {
    const writes: string[] = [];
    const io = { out() {}, err() {}, write: (s: string) => void writes.push(s), progress: true };
    const cols = Math.max(Math.min(process.stderr.columns || 80, 120), 20) - 1;
    const bar = progressBar(io, 3);
    const long = '/a/very/deep/directory/'.repeat(8) + 'holiday-photo.png';
    bar.update(1, long);
    bar.update(1, long); // unchanged: not redrawn
    bar.update(2, 'b.png');
    bar.done();
    expect(writes).toHaveLength(3);
    for (const w of writes.slice(0, 2)) expect(w.length).toBe(cols + 1);
    expect(writes[0]).toMatch(/^\r\[#{8}\.{16}\] 1\/3 ….*holiday-photo\.png$/);
    expect(long.endsWith(writes[0].slice(writes[0].indexOf('…') + 1))).toBe(true);
    expect(writes[1]).toMatch(/^\r\[#{16}\.{8}\] 2\/3 b\.png +$/);
    expect(writes[2]).toMatch(/^\r +\r$/);
  });

  it('on a terminal: a "loading weights" bar on stderr, redrawn in place and cleared, the result alone on stdout; --no-progress: none', async () => {
    const image = join(FIX, 'images', 'landscape.png');
    const commands: Record<string, string[]> = {
      classify: ['classify', image, '--weights', MICRO, '--device', 'cpu', '--json'],
      clusters: ['clusters', image, '--weights', join(FIX, 'micro_train.pth'), '--device', 'cpu', '-o', join(tmp, 'tty.png')],
      convert: ['convert', join(FIX, 'micro_train.pth'), join(tmp, 'tty.safetensors')],
    };
    for (const [name, argv] of Object.entries(commands)) {
      for (const variant of ['tty', 'tty --no-progress', 'piped'] as const) {
        const out: string[] = [];
        const err: string[] = [];
        const writes: string[] = [];
        const code = await main(variant === 'tty --no-progress' ? [...argv, '--no-progress'] : argv, {
          out: (s) => void out.push(s), err: (s) => void err.push(s), write: (s) => void writes.push(s), progress: variant !== 'piped',
        });
        const what = `${name} (${variant})`;
        expect(code, `${what}: ${err.join('\n')}`).toBe(0);
        expect(err, what).toEqual([]);
        expect(out, what).toHaveLength(1); // the result: one JSON array, one line of what was written
        if (variant !== 'tty') {
          expect(writes, what).toEqual([]);
          continue;
        }
        // Each draw starts with '\r' and fills the line; the bar grows to full at the weights' total.
        const draws = writes.filter((w) => w.includes('loading weights'));
        expect(draws.length, what).toBeGreaterThanOrEqual(2);
        expect(draws.length, what).toBeLessThanOrEqual(101);
        for (const d of draws) expect(d, what).toMatch(/^\r\[[#.]{24}\] \d+\.\d\/0\.1 MB loading weights *$/);
        expect(draws[0]).toMatch(/^\r\[\.{24}\] 0\.0\//);
        expect(draws.at(-1)).toMatch(/^\r\[#{24}\] 0\.1\/0\.1 MB/);
        // Cleared before the result is printed: the last write blanks the line.
        expect(writes.at(-1), what).toMatch(/^\r +\r$/);
        // The images bar names the image; a path too long for the line keeps its end after '…'.
        if (name === 'classify') {
          const bar = writes.find((w) => /^\r\[\.{24}\] 0\/1 /.test(w));
          expect(bar, 'the images bar').toBeDefined();
          const label = bar!.replace(/^\r\[\.{24}\] 0\/1 /, '').trimEnd();
          expect(label === image || (label.startsWith('…') && image.endsWith(label.slice(1)) && label.endsWith('landscape.png')), `the images bar: ${label}`).toBe(true);
        }
      }
    }
  });

  // A real terminal: util-linux `script` runs the command on a pseudo-terminal (stdout and stderr
  // both go to it), so stderr.isTTY is what turns the bar on (its width may read 0 there).
  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!hasScript)('on a real terminal (a pty made by `script`): the bar is drawn without any option; --no-progress: not', () => {
    const run = (...extra: string[]) => {
      const cmd = [process.execPath, join(ROOT, 'bin', 'secvit.mjs'), 'convert', join(FIX, 'micro_train.pth'), join(tmp, 'pty.safetensors'), ...extra]
        .map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
      const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', cwd: tmp, env: { ...process.env, SECVIT_POISON: '' } });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/pty\.safetensors: [\d,]+ parameters/);
      return r.stdout;
    };
    expect(run()).toMatch(/\r\[#{24}\] 0\.1\/0\.1 MB loading weights/);
    expect(run('--no-progress')).not.toMatch(/loading weights|\r\[/);
  });

  it('every family: convert infers torchvision\'s Swin from its keys; info --model / --weights; classify and clusters take --model', () => {
    // convert: a torchvision .pth with no metadata; the family and config come from its keys.
    const out = join(tmp, 'swin.safetensors');
    const c = cli('convert', join(FIX, 'swin_odd.pth'), out);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/25,678 parameters, config \{"family":"swin","patch_size":\[2,2\]/);
    expect(readSafetensors(out).tensors.get('features.1.0.attn.relative_position_index')!.dtype).toBe('I64');
    // info --model: the size without weights; --weights: what loading would infer.
    const i = cli('info', '--model', 'swin-t', '--json');
    expect(i.code, i.err).toBe(0);
    expect(JSON.parse(i.out)).toMatchObject({ family: 'swin', parameters: 28_288_354, preprocessing: { resize: 232, size: 224, interpolation: 'bicubic' } });
    const w = cli('info', '--weights', out);
    expect(w.out).toMatch(/^SwinTransformer \(swin\): 25,678 parameters/);
    expect(cli('info', '--model', 'swin-x').code).toBe(2);
    const all = JSON.parse(cli('info', '--json').out) as { models: { name: string; parameters: number }[] };
    expect(all.models.find((m) => m.name === 'vit-b-16')?.parameters).toBe(86_567_656);
    // classify: the family from the file; --model for a .pth whose head count is not in the weights.
    const img = join(ROOT, 'samples', 'fashion-0000-ankle-boot.png');
    const k = cli('classify', img, '-w', out, '-k', '2', '--json', '--device', 'cpu');
    expect(k.code, k.err).toBe(0);
    expect((JSON.parse(k.out) as { predictions: unknown[] }[])[0].predictions).toHaveLength(2);
    const vitCfg = JSON.stringify({ family: 'vit', imageSize: 40, patchSize: 8, numLayers: 2, numHeads: 3, hiddenDim: 24, mlpDim: 40, numClasses: 7 });
    expect(cli('classify', img, '-w', join(FIX, 'vit_odd.pth'), '--device', 'cpu').code).toBe(1);
    const v = cli('classify', img, '-w', join(FIX, 'vit_odd.pth'), '--model', vitCfg, '--json', '--device', 'cpu');
    expect(v.code, v.err).toBe(0);
    // clusters: a SEC-ViT picture (the class token is clustered but not drawn); plain Swin has no SEC block.
    const sec = join(tmp, 'secvit.safetensors');
    const cfg = { family: 'vit', imageSize: 32, patchSize: 8, numLayers: 1, numHeads: 1, hiddenDim: 8, mlpDim: 8, numClasses: 3, attention: 'sec', numClusters: 4 };
    const made = spawnSync(process.execPath, ['--input-type=module', '-e',
      `import { createModel } from ${JSON.stringify(join(ROOT, 'dist', 'esm', 'index.js'))}; const m = createModel(${JSON.stringify(cfg)}); m.save(${JSON.stringify(sec)}); m.dispose();`], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const png = join(tmp, 'sec-vit.png');
    const p = cli('clusters', img, '-w', sec, '-o', png, '--device', 'cpu');
    expect(p.code, p.err).toBe(0);
    expect(p.out).toMatch(/stage 0 block 0 head 0 of 1: 4 clusters of 17 tokens/);
    const q = cli('clusters', img, '-w', out, '-o', png, '--device', 'cpu');
    expect(q.code).toBe(2);
    expect(q.err).toMatch(/has no SEC attention block/);
  });

  it('clusters writes the format its -o extension names (png, jpg, webp) and refuses others; a directory given as an image is named as one', () => {
    const img = join(ROOT, 'samples', 'sample.png');
    const magic: Record<string, (b: Buffer) => boolean> = {
      'x.png': (b) => b.subarray(1, 4).toString() === 'PNG',
      'x.jpg': (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
      'x.webp': (b) => b.subarray(0, 4).toString() === 'RIFF' && b.subarray(8, 12).toString() === 'WEBP',
    };
    for (const [name, ok] of Object.entries(magic)) {
      const out = join(tmp, name);
      const r = cli('clusters', img, '-w', MICRO, '-o', out, '--device', 'cpu');
      expect(r.code, r.err).toBe(0);
      expect(ok(readFileSync(out)), name).toBe(true);
    }
    const gif = cli('clusters', img, '-w', MICRO, '-o', join(tmp, 'x.gif'), '--device', 'cpu');
    expect(gif.code).toBe(2);
    expect(gif.err).toMatch(/-o must name a \.png, \.jpg or \.webp file/);
    // Every failure is one line: parseArgs' multi-line message, a write into a directory.
    const ambiguous = cli('classify', img, '--top-k', '-1');
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.err.trimEnd().split('\n')).toHaveLength(1);
    const intoDir = join(tmp, 'adir.png');
    mkdirSync(intoDir, { recursive: true });
    const w = cli('clusters', img, '-w', MICRO, '-o', intoDir, '--device', 'cpu');
    expect(w.code).toBe(1);
    expect(w.err.trimEnd().split('\n')).toHaveLength(1);
    const dir = cli('classify', tmp, '--device', 'cpu');
    expect(dir.code).toBe(1);
    expect(dir.err).toMatch(/is a directory, not an image file/);
  });

  it('convert keeps the checkpoint\'s dtype (a float16 file stays float16) unless --dtype says otherwise', () => {
    const src = join(FIX, 'micro_bare_fp16.pth');
    const dtypes = (f: string) => new Set([...readSafetensors(f).tensors.values()].map((t) => t.dtype));
    const cfg = readSafetensors(MICRO).metadata.get('config')!;  // the bare file names no config
    const a = join(tmp, 'fp16.safetensors'), b = join(tmp, 'fp32.safetensors');
    const ra = cli('convert', src, a, '--model', cfg);
    expect(ra.code, ra.err).toBe(0);
    expect(dtypes(a)).toEqual(new Set(['F16', 'I64']));
    expect(cli('convert', src, b, '--model', cfg, '--dtype', 'float32').code).toBe(0);
    expect(dtypes(b)).toEqual(new Set(['F32', 'I64']));
    expect(cli('convert', src, b, '--model', cfg, '--dtype', 'float64').code).toBe(2);
  });

  it('weights known to be random (untrained) get one warning on stderr from classify and clusters; trained ones none', () => {
    const rnd = join(tmp, 'untrained.safetensors');
    const cfg = { family: 'vit', imageSize: 32, patchSize: 8, numLayers: 1, numHeads: 1, hiddenDim: 8, mlpDim: 8, numClasses: 3, attention: 'sec', numClusters: 2 };
    const made = spawnSync(process.execPath, ['--input-type=module', '-e',
      `import { createModel } from ${JSON.stringify(join(ROOT, 'dist', 'esm', 'index.js'))}; const m = createModel(${JSON.stringify(cfg)}, { seed: 4 }); m.save(${JSON.stringify(rnd)}); m.dispose();`], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    expect(readSafetensors(rnd).metadata.get('weights')).toBe('random initialisation (seed 4), untrained');
    const img = join(ROOT, 'samples', 'fashion-0000-ankle-boot.png');
    const c = cli('classify', img, '-w', rnd, '--json', '--device', 'cpu');
    expect(c.code, c.err).toBe(0);
    expect(JSON.parse(c.out)).toHaveLength(1);
    expect(c.err.trimEnd().split('\n')).toEqual([expect.stringMatching(/^secvit classify: warning: '.*untrained\.safetensors' holds random \(untrained\) weights/)]);
    const p = cli('clusters', img, '-w', rnd, '-o', join(tmp, 'u.png'), '--device', 'cpu');
    expect(p.code, p.err).toBe(0);
    expect(p.err).toMatch(/^secvit clusters: warning: .* holds random \(untrained\) weights/);
    // The bundled model (trained) classifies without a word on stderr.
    const b = cli('classify', img, '--json', '--device', 'cpu');
    expect(b.code).toBe(0);
    expect(b.err).toBe('');
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
