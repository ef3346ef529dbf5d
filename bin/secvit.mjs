#!/usr/bin/env node
// secvit command line: classify, convert, info (lib/cli.ts) and bench (bench/run.mjs).
// `secvit --help` lists them; each takes --help.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const [command, ...rest] = process.argv.slice(2);

// Loading the package loads the native addon; when that fails (no addon for this platform, one
// that does not load), its error, which names the fix, is the one line printed.
async function load(file) {
  try {
    return await import(file);
  } catch (e) {
    console.error(String(e?.message ?? e).replace(/\s*\n\s*/g, ' '));
    if (process.argv.includes('--verbose') && e?.stack) console.error(e.stack);
    process.exit(1);
  }
}

if (command === 'bench') {
  const bench = await load(path.join(root, 'bench', 'run.mjs'));
  try {
    process.exitCode = (await bench.main(rest)) ?? 0;
  } catch (e) {
    // Usage mistakes: one line, exit 2. Failures: one line, exit 1 (the stack with --verbose).
    console.error(`secvit ${e?.message ?? e}`);
    if (rest.includes('--verbose') && e?.stack) console.error(e.stack);
    process.exitCode = e instanceof bench.UsageError ? 2 : 1;
  }
} else {
  const { main } = await load(path.join(root, 'dist', 'esm', 'cli.js'));
  process.exitCode = await main(process.argv.slice(2));
}
