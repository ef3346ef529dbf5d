// Every fenced TypeScript block of README.md compiles against the package's own declarations
// (dist/esm/index.d.ts, imported as 'secvit'), so the README cannot name an export, an option
// or a method that does not exist, or pass one the wrong type. The reference listings use
// placeholders (`q`, `weight`, `img`...): names a block uses without defining are declared as
// `any` for it, so only the listing's own calls are checked. Every block is also run as written:
// the Models and Images/pipeline examples by test/models/readme.test.ts, the others by
// test/readme.run.test.ts.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(__dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'secvit-readme-ts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The ```ts blocks with the heading above each. */
function blocks(): { section: string; code: string }[] {
  const md = readFileSync(join(repo, 'README.md'), 'utf8');
  const out: { section: string; code: string }[] = [];
  let section = '';
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (/^#{1,4} /.test(lines[i])) section = lines[i].replace(/^#+ /, '');
    if (lines[i] === '```ts' || lines[i] === '```js') {
      const start = i + 1;
      while (i < lines.length && lines[++i] !== '```');
      out.push({ section, code: lines.slice(start, i).join('\n') });
    }
  }
  return out;
}

function compile(files: string[]): readonly ts.Diagnostic[] {
  const program = ts.createProgram(files, {
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'], strict: true, noEmit: true, skipLibCheck: true, types: ['node'],
    typeRoots: [join(repo, 'node_modules', '@types')],
    paths: { secvit: [join(repo, 'dist', 'esm', 'index.d.ts')] },
  });
  return ts.getPreEmitDiagnostics(program);
}

const text = (d: ts.Diagnostic) => ts.flattenDiagnosticMessageText(d.messageText, '\n');

describe('README code blocks', () => {
  const all = blocks();

  it('has the blocks this test expects (sections renamed would skip them silently)', () => {
    expect(all.length).toBeGreaterThanOrEqual(6);
    for (const s of ['Models', 'Images and the one-call pipeline', 'Tensors', 'Attention', 'Layers']) expect(all.map((b) => b.section)).toContain(s);
  });

  it('every block typechecks against the published declarations', () => {
    const files = all.map((b, i) => join(dir, `block${i}.mts`));
    const placeholders = all.map(() => new Set<string>());
    // Declare the names a block leaves undefined (the listings' placeholders), then check again.
    for (let round = 0; round < 3; round++) {
      all.forEach((b, i) => {
        const decl = [...placeholders[i]].map((n) => `declare const ${n}: any;`).join('\n');
        writeFileSync(files[i], `${b.code}\n${decl}\nexport {};\n`);
      });
      const diags = compile(files);
      let added = 0;
      for (const d of diags) {
        const m = /^(?:Cannot find name|No value exists in scope for the shorthand property) '(\w+)'/.exec(text(d));
        const i = files.indexOf(d.file?.fileName ?? '');
        if (m && i >= 0 && !placeholders[i].has(m[1])) {
          placeholders[i].add(m[1]);
          added++;
        }
      }
      if (added === 0) {
        const problems = diags.map((d) => {
          const i = files.indexOf(d.file?.fileName ?? '');
          const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
          return `README block ${i} ("${all[i]?.section}") line ${line}: ${text(d)}`;
        });
        expect(problems).toEqual([]);
        return;
      }
    }
    throw new Error('placeholders did not settle');
  });
});
