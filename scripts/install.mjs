// npm's install step: builds the native addon (cmake-js), printing a short summary instead of
// the compiler's output. The whole log (with ptxas's register/spill report of every CUDA kernel)
// goes to build/secvit-build.log; SECVIT_VERBOSE_BUILD=1 streams it instead. On failure the
// log's last lines are printed. SECVIT_CUDA=ON|OFF|AUTO picks the CUDA backend (CMakeLists.txt).
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const cmakeJs = createRequire(path.join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
const verbose = process.env.SECVIT_VERBOSE_BUILD === '1';
const logPath = path.join(root, 'build', 'secvit-build.log');
mkdirSync(path.dirname(logPath), { recursive: true });
const log = createWriteStream(logPath);
const t0 = Date.now();
const child = spawn(process.execPath, [cmakeJs, 'compile', '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
for (const s of [child.stdout, child.stderr]) {
  s.on('data', (d) => {
    log.write(d);
    if (verbose) process.stderr.write(d);
  });
}
child.on('error', (e) => {
  console.error(`secvit: could not start the native build (${e.message})`);
  process.exitCode = 1;
});
child.on('close', (code) => {
  log.end(() => {
    const text = readFileSync(logPath, 'utf8');
    const secs = ((Date.now() - t0) / 1000).toFixed(0);
    if (code !== 0) {
      const tail = text.trimEnd().split('\n').slice(-40).join('\n');
      console.error(`${tail}\nsecvit: the native build failed (exit ${code}) after ${secs} s; the whole log is ${logPath}`);
      process.exitCode = code ?? 1;
      return;
    }
    const kernels = (text.match(/Compiling entry function/g) ?? []).length;
    const spills = text.split('\n').filter((l) => /[1-9][0-9]* bytes spill (stores|loads)/.test(l)).length;
    const cuda = kernels > 0 ? `CUDA backend: ${kernels} kernel compilations, ${spills ? `${spills} spilling (see the log)` : 'none spilling'}` : 'CUDA backend: not built (no nvcc, or SECVIT_CUDA=OFF)';
    console.log(`secvit: native addon built in ${secs} s; ${cuda}; log: ${path.relative(process.cwd(), logPath) || logPath}`);
  });
});
