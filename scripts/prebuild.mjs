// npm's prepack step: the prebuilt addons a packed secvit carries, in prebuildify's layout
// (prebuilds/<platform>-<arch>/secvit.node), which lib/native.ts and scripts/install.mjs look up.
//   linux-x64    this machine's build (build/, incremental): CPU + CUDA backends, cudart static.
//                The package must carry CUDA, so nvcc is required unless SECVIT_PREBUILD_CUDA=OFF.
//   linux-arm64  cross-compiled with Debian's g++-aarch64-linux-gnu into build-arm64/ (CPU).
// SECVIT_PREBUILD_TARGETS=linux-x64[,linux-arm64] picks the targets (default both). Each addon
// is stripped and checked: its ELF machine, that it needs no libstdc++ (linked in), and that the
// newest glibc symbol version it needs is at most 2.34, the README's promise.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const cmakeJs = createRequire(path.join(root, 'package.json')).resolve('cmake-js/bin/cmake-js');
const targets = (process.env.SECVIT_PREBUILD_TARGETS ?? 'linux-x64,linux-arm64').split(',').map((t) => t.trim()).filter(Boolean);
const ELF_MACHINE = { 'linux-x64': 62, 'linux-arm64': 183 };

function fail(msg) {
  console.error(`prebuild: ${msg}`);
  process.exit(1);
}

// Runs a command; with `log`, its output goes to that file and only its tail is shown on failure.
function run(cmd, args, env = {}, log = null) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: log ? 'pipe' : 'inherit', encoding: 'utf8', maxBuffer: 256 << 20, env: { ...process.env, ...env } });
  if (log) {
    mkdirSync(path.dirname(log), { recursive: true });
    writeFileSync(log, `${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  if (r.status !== 0) {
    if (log) console.error(readFileSync(log, 'utf8').trimEnd().split('\n').slice(-30).join('\n'));
    fail(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})${log ? `; the whole log is ${log}` : ''}`);
  }
}

function elfMachine(file) {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(20);
  readSync(fd, b, 0, 20, 0);
  closeSync(fd);
  if (b.readUInt32BE(0) !== 0x7f454c46) fail(`${file} is not an ELF file`);
  return b.readUInt16LE(18);
}

// The dynamic needs of an addon: its DT_NEEDED libraries and the newest GLIBC_x.y it references.
function needs(file, objdump) {
  const r = spawnSync(objdump, ['-p', '-T', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) fail(`${objdump} -p -T ${file}: ${r.stderr}`);
  const libs = [...r.stdout.matchAll(/^\s+NEEDED\s+(\S+)/gm)].map((m) => m[1]);
  const versions = [...r.stdout.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const glibc = versions.length ? versions[versions.length - 1].join('.') : 'none';
  return { libs, glibc };
}

function finish(target, built, tools) {
  if (!existsSync(built)) fail(`${target}: ${built} was not built`);
  const machine = elfMachine(built);
  if (machine !== ELF_MACHINE[target]) fail(`${target}: ${built} is for ELF machine ${machine}, not ${ELF_MACHINE[target]}`);
  const dir = path.join(root, 'prebuilds', target);
  mkdirSync(dir, { recursive: true });
  const out = path.join(dir, 'secvit.node');
  run(tools.strip, ['--strip-unneeded', '-o', out, built]);
  const { libs, glibc } = needs(out, tools.objdump);
  if (libs.some((l) => l.startsWith('libstdc++'))) fail(`${target}: the addon links ${libs.join(', ')} dynamically (libstdc++ must be inside it)`);
  if (glibc !== 'none' && Number(glibc.split('.')[1]) > 34) fail(`${target}: the addon needs glibc ${glibc}, above the 2.34 the README promises (see native/core/glibc_compat.c)`);
  console.log(`prebuild: ${path.relative(root, out)}: ${(statSync(out).size / 2 ** 20).toFixed(1)} MiB, needs ${libs.join(' ')}, glibc >= ${glibc}`);
}

rmSync(path.join(root, 'prebuilds'), { recursive: true, force: true });
for (const target of targets) {
  if (target === 'linux-x64') {
    if (`${process.platform}-${process.arch}` !== 'linux-x64') fail('the linux-x64 prebuilt is made on linux-x64');
    run(process.execPath, [path.join(root, 'scripts', 'install.mjs')], { SECVIT_BUILD_FROM_SOURCE: '1' });
    const built = path.join(root, 'build', 'Release', 'secvit.node');
    const probe = spawnSync(process.execPath, ['-p', `require(${JSON.stringify(built)}).builtWithCuda`], { encoding: 'utf8' });
    const cuda = probe.stdout.trim() === 'true';
    if (!cuda && process.env.SECVIT_PREBUILD_CUDA !== 'OFF') {
      fail('build/ holds an addon without the CUDA backend, which the linux-x64 prebuilt carries: install nvcc, ' +
        'then `rm -rf build && npm pack` (or SECVIT_PREBUILD_CUDA=OFF for a CPU-only package)');
    }
    finish(target, built, { strip: 'strip', objdump: 'objdump' });
  } else if (target === 'linux-arm64') {
    const cxx = 'aarch64-linux-gnu-g++';
    if (spawnSync(cxx, ['--version']).status !== 0) fail(`the linux-arm64 prebuilt needs ${cxx} (apt-get install g++-aarch64-linux-gnu), or SECVIT_PREBUILD_TARGETS=linux-x64`);
    const out = path.join(root, 'build-arm64');
    const t0 = Date.now();
    run(process.execPath, [cmakeJs, 'compile', '-O', out, '--log-level', 'warn',
      `--CDCMAKE_TOOLCHAIN_FILE=${path.join(root, 'scripts', 'aarch64-linux-gnu.cmake')}`], { SECVIT_CUDA: 'OFF', SECVIT_ASAN: 'OFF' }, path.join(out, 'secvit-build.log'));
    // No compiler warning on arm64 (-Wall -Wextra): the arm64 code paths are otherwise only compiled.
    const warnings = readFileSync(path.join(out, 'secvit-build.log'), 'utf8').split('\n').filter((l) => /: warning: /.test(l));
    if (warnings.length) fail(`linux-arm64: the compiler warned:\n${warnings.slice(0, 20).join('\n')}`);
    console.log(`prebuild: linux-arm64 cross-compiled in ${((Date.now() - t0) / 1000).toFixed(0)} s, no warnings`);
    finish(target, path.join(out, 'Release', 'secvit.node'), { strip: 'aarch64-linux-gnu-strip', objdump: 'aarch64-linux-gnu-objdump' });
  } else {
    fail(`unknown target ${target} (linux-x64, linux-arm64)`);
  }
}
