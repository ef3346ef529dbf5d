// Every code block of README.md is JavaScript (an ES module, as a user's .mjs on Node 20) that
// parses on this Node, typechecks (checkJs) against the package's own declarations
// (dist/esm/index.d.ts, imported as 'secvit') with every name it uses defined in it, and opens only
// files the package ships. So the README cannot name an export, an option or a method that does
// not exist, pass one the wrong type, or leave the reader to supply an input. Every block is also
// run as written: the Models, Images/pipeline and Swin/ViT examples by
// test/models/readme.test.ts, the others by test/readme.run.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { readmeBlocks } from './helpers/readme.js';

const repo = resolve(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'secvit-readme-ts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));


function compile(files: string[]): readonly ts.Diagnostic[] {
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, allowJs: true, checkJs: true,
    // JavaScript callbacks are not annotated: their parameters may be implicitly any.
    noImplicitAny: false,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'], strict: true, noEmit: true, skipLibCheck: true, types: ['node'],
    typeRoots: [join(repo, 'node_modules', '@types')],
    paths: { secvit: [join(repo, 'dist', 'esm', 'index.d.ts')] },
  });
  return ts.getPreEmitDiagnostics(program);
}

const text = (d: ts.Diagnostic) => ts.flattenDiagnosticMessageText(d.messageText, '\n');

describe('README code blocks', () => {
  const all = readmeBlocks();

  it('has the blocks this test expects (sections renamed would skip them silently), all JavaScript', () => {
    for (const b of all) expect(b.lang, `the block under "${b.section}" is JavaScript`).toBe('js');
    expect(all.length).toBeGreaterThanOrEqual(6);
    for (const s of ['Models', 'Images and the one-call pipeline', 'Tensors', 'Attention', 'Layers']) expect(all.map((b) => b.section)).toContain(s);
  });

  // Issue 21, item 9: the examples run as written on Node 20. They are JavaScript ES modules: no
  // `using` (a SyntaxError in a Node 20 .mjs), no name a reader has to supply (the listings once
  // used rgb01, f32, data, shape, img, a, b), no file the user does not have.
  it('every block is JavaScript this Node parses as an ES module (no `using` on Node 20)', () => {
    all.forEach((b, i) => {
      const file = join(dir, `syntax${i}.mjs`);
      writeFileSync(file, b.code);
      const r = spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' });
      expect(r.status, `README block ${i} ("${b.section}"): ${r.stderr}`).toBe(0);
    });
    // The Node this suite supports first: a `using` declaration is not JavaScript there.
    if (Number(process.versions.node.split('.')[0]) === 20) {
      const file = join(dir, 'using.mjs');
      writeFileSync(file, 'import { zeros } from "secvit";\n{ using t = zeros([1]); }\n');
      expect(spawnSync(process.execPath, ['--check', file], { encoding: 'utf8' }).status).not.toBe(0);
    }
  });

  it('every block typechecks against the published declarations, with every name defined in it', () => {
    const files = all.map((b, i) => join(dir, `block${i}.mjs`));
    all.forEach((b, i) => writeFileSync(files[i], `${b.code}\nexport {};\n`));
    const problems = compile(files).map((d) => {
      const i = files.indexOf(d.file?.fileName ?? '');
      const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
      return `README block ${i} ("${all[i]?.section}") line ${line}: ${text(d)}`;
    });
    expect(problems).toEqual([]);
  });

  it('the files the examples open ship in the package (the bundled model, the samples)', () => {
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { files: string[] };
    for (const b of all)
      for (const m of b.code.matchAll(/'node_modules\/secvit\/([^']+)'/g)) {
        const rel = m[1].endsWith('/') ? m[1].slice(0, -1) : m[1];
        expect(existsSync(join(repo, rel)), `${b.section}: ${rel}`).toBe(true);
        expect(pkg.files.some((f) => rel === f || rel.startsWith(`${f}/`)), `${b.section}: ${rel} is in package.json's files`).toBe(true);
      }
  });

  // Issue 21, item 10: a user learns where weights come from, and that ../shared is the repository's.
  it('says where weights come from, and how the repository finds its shared data', () => {
    const md = readFileSync(join(repo, 'README.md'), 'utf8');
    const at = md.indexOf('\n## Weights\n');
    expect(at).toBeGreaterThan(0);
    const section = md.slice(at, md.indexOf('\n## ', at + 5));
    for (const needle of ['secvit-fm', 'node_modules/secvit/samples/', 'github.com/qhfan/SecViT', 'torchvision', 'swin_t-704ceda3.pth', 'SECVIT_SHARED_DIR', 'downloads nothing'])
      expect(section, needle).toContain(needle);
  });
});
