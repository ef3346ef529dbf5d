// The npm registry reachable from our CI machines lacks some platform-specific optional
// packages (e.g. @rollup/rollup-android-arm64). npm then leaves them out of package-lock.json,
// and `npm ci` refuses the lockfile as out of sync. This adds each missing optional dependency
// as an optional entry, so `npm ci` accepts the lockfile and simply skips what it cannot fetch.
// Run after changing dependencies: node scripts/complete-lockfile.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
let added = 0;
for (const [key, pkg] of Object.entries(lock.packages)) {
  for (const [name, range] of Object.entries(pkg.optionalDependencies ?? {})) {
    const base = key === '' ? '' : `${key}/`;
    const nested = `${base}node_modules/${name}`;
    const top = `node_modules/${name}`;
    if (lock.packages[nested] || lock.packages[top]) continue;
    lock.packages[top] = { version: range, dev: pkg.dev, optional: true };
    added++;
  }
}
writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`complete-lockfile: added ${added} optional entries`);
