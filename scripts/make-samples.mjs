// Writes samples/: the first image of each class in Fashion-MNIST's test split (Debian's
// dataset-fashion-mnist), as 28x28 grey PNGs named fashion-<test index>-<class>.png, so a
// newcomer's first `secvit classify` sees real images. The bundled model never trained on them.
// Usage: node scripts/make-samples.mjs [/usr/share/datasets/fashion-mnist]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodePng, loadIdx } from '../dist/esm/index.js';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const test = loadIdx(process.argv[2] ?? '/usr/share/datasets/fashion-mnist', 'test');
const per = test.height * test.width;
for (let c = 0; c < test.classes.length; c++) {
  const i = test.labels.indexOf(c);
  const slug = test.classes[c].toLowerCase().replace(/[^a-z0-9]+/g, '-');
  const file = path.join(root, 'samples', `fashion-${String(i).padStart(4, '0')}-${slug}.png`);
  writeFileSync(file, encodePng({ data: test.pixels.subarray(i * per, (i + 1) * per), width: test.width, height: test.height, channels: 1 }));
  console.log(file);
}
