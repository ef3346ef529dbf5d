#!/usr/bin/env bash
# The package as users get it: `npm pack` (which makes the prebuilt addons, scripts/prebuild.mjs:
# linux-x64 with CUDA, linux-arm64 cross-compiled; the arm64 one is run under qemu-user against
# the goldens, scripts/test-arm64.sh), then into empty projects:
#  1. the prebuilt install: `npm install --ignore-scripts <tarball>` with no cmake, compiler or
#     make on PATH, under a minute; the CLI from there: info, classify, clusters, convert, a quick
#     bench, ESM and CommonJS. `npm rebuild secvit` (the install script) picks the prebuilt and
#     compiles nothing; SECVIT_BUILD_FROM_SOURCE=1 without a compiler fails with a clear message
#     and leaves the prebuilt working.
#  2. the source fallback: with no prebuilt for the platform (removed), the CLI's one-line error
#     names `npm rebuild secvit`; that command, with cmake and g++, builds from source (CPU only
#     unless SECVIT_PACKED_CUDA=AUTO), printing a summary, not the compiler's output, and the
#     package then runs on that build.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" >/dev/null
tarball=$(ls "$work"/secvit-*.tgz)
echo "test-packed: $(basename "$tarball"), $(tar tzf "$tarball" | wc -l) files, $(du -m "$tarball" | cut -f1) MB"
listing=$work/listing.txt
tar tzf "$tarball" > "$listing"
for f in package/LICENSE package/prebuilds/linux-x64/secvit.node package/prebuilds/linux-arm64/secvit.node; do
  grep -qx "$f" "$listing" || { echo "test-packed: the tarball has no $f"; exit 1; }
done
if grep -E '^package/(test|build[^/]*|dist/.*\.test\.|bench/results)/' "$listing"; then
  echo "test-packed: the tarball holds files users do not need (above)"; exit 1
fi
# The linux-arm64 prebuilt, as packed, on an arm64 Node under qemu-user: the goldens on cpu and
# cuda-emu (scripts/test-arm64.sh; SECVIT_PACKED_ARM64=skip leaves it out).
if [[ ${SECVIT_PACKED_ARM64:-run} != skip ]]; then
  tar xzf "$tarball" -C "$work" package/prebuilds/linux-arm64/secvit.node
  bash scripts/test-arm64.sh "$work/package/prebuilds/linux-arm64/secvit.node"
fi

# A PATH with node and npm but no compiler, cmake or make: only these tools, linked one by one.
nocc=$work/nocc-bin
mkdir "$nocc"
for t in node npm npx sh bash env cat cp mv rm ls mkdir rmdir ln chmod grep sed head tail tr uname dirname basename readlink test true false tee wc sort date sleep mktemp touch find xargs expr id tar gzip; do
  p=$(command -v "$t" 2>/dev/null) && ln -s "$p" "$nocc/$t"
done
for t in cmake gcc g++ cc c++ make nvcc; do
  PATH=$nocc command -v "$t" >/dev/null && { echo "test-packed: $t is still on the compiler-free PATH"; exit 1; }
done

sample=node_modules/secvit/samples/sample.png
# ---- 1. the prebuilt install, with no compiler ----------------------------------------------
mkdir "$work/app" && cd "$work/app"
npm init -y >/dev/null
t0=$SECONDS
PATH=$nocc npm install --ignore-scripts --no-audit --no-fund "$tarball" > install.log 2>&1 || { cat install.log; exit 1; }
secs=$((SECONDS - t0))
echo "test-packed: npm install --ignore-scripts, no compiler on PATH: ${secs} s"
((secs < 60)) || { echo "test-packed: the prebuilt install took ${secs} s (over a minute)"; exit 1; }
[[ ! -e node_modules/secvit/build ]] || { echo "test-packed: the prebuilt install built something"; exit 1; }
PATH=$nocc npx secvit info | tee info.txt
grep -q "^addon: prebuilt" info.txt || { echo "test-packed: the prebuilt addon was not used"; exit 1; }
# The installed linux-x64 prebuilt (stripped, libstdc++ inside) against the goldens, as arm64's.
SECVIT_ADDON_PATH=$PWD/node_modules/secvit/prebuilds/linux-x64/secvit.node node "$repo/scripts/check-addon.cjs"
grep -iE "^ *cuda +(available|unavailable)" info.txt | grep -vq "built without CUDA" || { echo "test-packed: the linux-x64 prebuilt has no CUDA backend"; exit 1; }
# The install script itself (npm rebuild runs it) takes the prebuilt and compiles nothing.
PATH=$nocc npm rebuild secvit --foreground-scripts > rebuild.log 2>&1 || { cat rebuild.log; exit 1; }
grep -q "secvit: using the prebuilt addon for linux-x64 (CPU and CUDA backends); nothing to compile" rebuild.log || { cat rebuild.log; echo "test-packed: npm rebuild did not take the prebuilt"; exit 1; }
# Asking for a source build without a compiler fails, says why, and leaves the prebuilt working.
if PATH=$nocc SECVIT_BUILD_FROM_SOURCE=1 npm rebuild secvit --foreground-scripts > forced.log 2>&1; then
  cat forced.log; echo "test-packed: a source build with no cmake on PATH succeeded?"; exit 1
fi
grep -q "secvit: building the native addon from source: SECVIT_BUILD_FROM_SOURCE=1" forced.log || { cat forced.log; exit 1; }
grep -q "secvit: the native build failed" forced.log || { cat forced.log; echo "test-packed: no build-failure summary"; exit 1; }
PATH=$nocc npx secvit info | grep -q "^addon: prebuilt" || { echo "test-packed: the prebuilt stopped working after a failed source build"; exit 1; }
rm -rf node_modules/secvit/build
cp "$repo/test/fixtures/micro.model.safetensors" "$repo/test/fixtures/micro_train.pth" .
export PATH_SAVED=$PATH
export PATH=$nocc
npx secvit classify "$sample" --weights micro.model.safetensors --device cpu --json > classify.json
node -e "const r = JSON.parse(require('fs').readFileSync('classify.json', 'utf8')); if (r.length !== 1 || r[0].predictions.length !== 5) throw new Error('classify: unexpected output');"
# The bundled model, with no weights given: a Fashion-MNIST sample is classified by name.
npx secvit classify node_modules/secvit/samples/fashion-0000-ankle-boot.png --json > bundled.json
node -e "const r = JSON.parse(require('fs').readFileSync('bundled.json', 'utf8')); if (r[0].predictions[0].label !== 'Ankle boot') throw new Error('bundled model: ' + JSON.stringify(r));"
npx secvit clusters "$sample" --weights micro.model.safetensors --device cpu -o clusters.png
test -s clusters.png
npx secvit convert micro_train.pth converted.safetensors
# (The dispatch group only: writing JSON when asked is what is checked here; test/bench.test.ts runs the rest.)
npx secvit bench --groups dispatch --out bench.json > bench.log
test -s bench.json
if ls node_modules/secvit/*.json node_modules/secvit/bench/*.json 2>/dev/null | grep -v package.json; then
  echo "test-packed: bench wrote into the installed package"; exit 1
fi
# ESM and CommonJS entry points of the installed package.
node -e "const s = require('secvit'); const t = s.tensor([1, 2], [2]); if (t.shape[0] !== 2) throw new Error('cjs'); t.dispose();"
node --input-type=module -e "import { preprocess } from 'secvit'; const x = await preprocess('$sample'); if (x.shape.join() !== '1,3,224,224') throw new Error('esm'); x.dispose();"
export PATH=$PATH_SAVED

# ---- 2. the source fallback -------------------------------------------------------------------
# No prebuilt for this platform (as on one secvit ships none for): the error is one line and
# names the fix, which is then run as written.
rm -rf node_modules/secvit/prebuilds
if npx secvit info > missing.log 2>&1; then echo "test-packed: info ran with no addon at all?"; exit 1; fi
cat missing.log
[[ $(wc -l < missing.log) -eq 1 ]] || { echo "test-packed: the missing-addon error is not one line"; exit 1; }
grep -q "no native addon for linux-x64.*\`npm rebuild secvit\`" missing.log || { echo "test-packed: the missing-addon error does not name npm rebuild secvit"; exit 1; }
cuda=${SECVIT_PACKED_CUDA:-OFF}
SECVIT_CUDA=$cuda npm rebuild secvit --foreground-scripts > build.log 2>&1 || { cat build.log; exit 1; }
grep -q "secvit: building the native addon from source: no prebuilt addon for linux-x64 in this package" build.log || { cat build.log; echo "test-packed: the fallback did not say why it builds"; exit 1; }
grep -q "secvit: native addon built in" build.log || { cat build.log; echo "test-packed: no build summary"; exit 1; }
if grep -q "ptxas info" build.log; then echo "test-packed: the build printed the ptxas report"; exit 1; fi
grep "secvit: native addon built" build.log
npx secvit info | tee info.txt
grep -q "^addon: built from source" info.txt || { echo "test-packed: the source build is not the one loaded"; exit 1; }
if [[ $cuda != OFF ]] && command -v nvcc >/dev/null; then
  if grep -q "built without CUDA" info.txt; then echo "test-packed: SECVIT_CUDA=$cuda with nvcc present, but the CUDA backend was not built"; exit 1; fi
  grep -iE "^ *cuda\b" info.txt || { echo "test-packed: info does not list the cuda backend"; exit 1; }
fi
npx secvit classify node_modules/secvit/samples/fashion-0000-ankle-boot.png --json > bundled.json
node -e "const r = JSON.parse(require('fs').readFileSync('bundled.json', 'utf8')); if (r[0].predictions[0].label !== 'Ankle boot') throw new Error('source build: ' + JSON.stringify(r));"
echo "test-packed: OK"
