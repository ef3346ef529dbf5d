// npm's install step. A packed secvit carries prebuilt addons (prebuilds/<platform>-<arch>/
// secvit.node, made by scripts/prebuild.mjs at pack time): when one fits this platform and loads
// here, nothing is compiled. Otherwise (no prebuilt for this platform, one that does not load,
// e.g. an older glibc or musl, a git checkout, or SECVIT_BUILD_FROM_SOURCE=1) the addon is built
// from source with cmake-js into build/, which the loader prefers over the prebuilt.
// The build prints a short summary instead of the compiler's output. The whole log (with
// ptxas's register/spill report of every CUDA kernel) goes to build/secvit-build.log;
// SECVIT_VERBOSE_BUILD=1 streams it instead. On failure the log's last lines are printed.
// SECVIT_CUDA=ON|OFF|AUTO picks the CUDA backend (CMakeLists.txt).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const cmakeJs = createRequire(path.join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
const platform = `${process.platform}-${process.arch}`;
const prebuilt = path.join(root, 'prebuilds', platform, 'secvit.node');

// Loads an addon in a child process: whether it loads (a prebuilt linked against a newer glibc,
// or for glibc on musl, does not), why not, and whether it carries the CUDA backend.
function probeAddon(file) {
  const r = spawnSync(process.execPath, ['-e', `const a = require(${JSON.stringify(file)}); if (!a.backends().length) process.exit(3); console.log(a.builtWithCuda)`], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || '').split('\n').find((l) => /error/i.test(l)) ?? `exit ${r.status}`;
    return { ok: false, why: why.trim(), cuda: false };
  }
  return { ok: true, why: '', cuda: r.stdout.trim() === 'true' };
}

// Why the source build runs, or null when the prebuilt serves (`probe`: the prebuilt's).
function reasonToBuild() {
  if (process.env.SECVIT_BUILD_FROM_SOURCE === '1') return 'SECVIT_BUILD_FROM_SOURCE=1';
  if (existsSync(path.join(root, '.git'))) return 'a git checkout builds its own addon';
  if (!existsSync(prebuilt)) return `no prebuilt addon for ${platform} in this package`;
  probe = probeAddon(prebuilt);
  return probe.ok ? null : `the prebuilt addon for ${platform} does not load here (${probe.why})`;
}

let probe = null;
const why = reasonToBuild();
if (why === null) {
  console.log(`secvit: using the prebuilt addon for ${platform} (${probe.cuda ? 'CPU and CUDA backends' : 'CPU backend'}); nothing to compile`);
  process.exit(0);
}
console.log(`secvit: building the native addon from source: ${why} (needs cmake and a C++20 compiler; a few minutes)`);

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
      console.error(`${tail}\nsecvit: the native build failed (exit ${code}) after ${secs} s; the whole log is ${logPath}` +
        (existsSync(prebuilt) ? '' : `. No prebuilt addon ships for ${platform}: install cmake and a C++20 compiler, then \`npm rebuild secvit\`.`));
      process.exitCode = code ?? 1;
      return;
    }
    const kernels = (text.match(/Compiling entry function/g) ?? []).length;
    const spills = text.split('\n').filter((l) => /[1-9][0-9]* bytes spill (stores|loads)/.test(l)).length;
    // Whether CUDA is in the addon is the addon's to say (an incremental build compiles no kernel).
    const withCuda = probeAddon(path.join(root, 'build', 'Release', 'secvit.node')).cuda;
    const cuda = !withCuda
      ? 'CUDA backend: not built (no nvcc, or SECVIT_CUDA=OFF)'
      : kernels > 0
        ? `CUDA backend: ${kernels} kernel compilations, ${spills ? `${spills} spilling (see the log)` : 'none spilling'}`
        : 'CUDA backend: built (no kernel recompiled)';
    console.log(`secvit: native addon built in ${secs} s; ${cuda}; log: ${path.relative(process.cwd(), logPath) || logPath}`);
  });
});
