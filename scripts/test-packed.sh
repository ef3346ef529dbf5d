#!/usr/bin/env bash
# The package as users get it: `npm pack`, then install the tarball into an empty project and
# run the CLI from there: info, classify, clusters, convert and a quick bench. Checks that the
# install prints a summary, not the compiler's output. The CUDA build is off by default, to keep
# CI fast; SECVIT_PACKED_CUDA=AUTO builds it too when nvcc is present (then `info` must list the
# cuda backend as built, and usable or unavailable with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
npm pack --silent --pack-destination "$work" >/dev/null
tarball=$(ls "$work"/secvit-*.tgz)
echo "test-packed: $(basename "$tarball"), $(tar tzf "$tarball" | wc -l) files"
tar tzf "$tarball" | grep -x 'package/LICENSE' > /dev/null || { echo "test-packed: the tarball has no LICENSE"; exit 1; }  # not grep -q: its early exit would SIGPIPE tar under pipefail
if tar tzf "$tarball" | grep -E '^package/(test|build|dist/.*\.test\.|bench/results)/'; then
  echo "test-packed: the tarball holds files users do not need (above)"; exit 1
fi
mkdir "$work/app" && cd "$work/app"
npm init -y >/dev/null
cuda=${SECVIT_PACKED_CUDA:-OFF}
SECVIT_CUDA=$cuda npm install --no-audit --no-fund --foreground-scripts "$tarball" > install.log 2>&1 || { cat install.log; exit 1; }
grep -q "secvit: native addon built in" install.log || { cat install.log; echo "test-packed: no build summary"; exit 1; }
if grep -q "ptxas info" install.log; then echo "test-packed: the install printed the ptxas report"; exit 1; fi
grep "secvit: native addon built" install.log
cp "$repo/test/fixtures/micro.model.safetensors" "$repo/test/fixtures/micro_train.pth" .
sample=node_modules/secvit/samples/sample.png
npx secvit info | tee info.txt
if [[ $cuda != OFF ]] && command -v nvcc >/dev/null; then
  if grep -q "built without CUDA" info.txt; then echo "test-packed: SECVIT_CUDA=$cuda with nvcc present, but the CUDA backend was not built"; exit 1; fi
  grep -iE "^ *cuda\b" info.txt || { echo "test-packed: info does not list the cuda backend"; exit 1; }
fi
npx secvit classify "$sample" --weights micro.model.safetensors --device cpu --json > classify.json
node -e "const r = JSON.parse(require('fs').readFileSync('classify.json', 'utf8')); if (r.length !== 1 || r[0].predictions.length !== 5) throw new Error('classify: unexpected output');"
# The bundled model, with no weights given: a Fashion-MNIST sample is classified by name.
npx secvit classify node_modules/secvit/samples/fashion-0000-ankle-boot.png --json > bundled.json
node -e "const r = JSON.parse(require('fs').readFileSync('bundled.json', 'utf8')); if (r[0].predictions[0].label !== 'Ankle boot') throw new Error('bundled model: ' + JSON.stringify(r));"
npx secvit clusters "$sample" --weights micro.model.safetensors --device cpu -o clusters.png
test -s clusters.png
npx secvit convert micro_train.pth converted.safetensors
npx secvit bench --out bench.json > bench.log
test -s bench.json
if ls node_modules/secvit/*.json node_modules/secvit/bench/*.json 2>/dev/null | grep -v package.json; then
  echo "test-packed: bench wrote into the installed package"; exit 1
fi
# ESM and CommonJS entry points of the installed package.
node -e "const s = require('secvit'); const t = s.tensor([1, 2], [2]); if (t.shape[0] !== 2) throw new Error('cjs'); t.dispose();"
node --input-type=module -e "import { preprocess } from 'secvit'; const x = await preprocess('$sample'); if (x.shape.join() !== '1,3,224,224') throw new Error('esm'); x.dispose();"
echo "test-packed: OK"
