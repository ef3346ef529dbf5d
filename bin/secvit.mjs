#!/usr/bin/env node
// secvit command line: `secvit bench [--full] [--json FILE]`, `secvit info`.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const [command = 'help', ...rest] = process.argv.slice(2);
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

if (command === 'bench') {
  const { main } = await import(path.join(root, 'bench', 'run.mjs'));
  await main(rest);
} else if (command === 'info') {
  const secvit = await import(path.join(root, 'dist', 'esm', 'index.js'));
  console.log(JSON.stringify({ backends: secvit.backends(), auto: secvit.selectDevice('auto') }, null, 2));
} else {
  console.log('usage: secvit bench [--full] [--json FILE] [--threads N,M] [--stages 0,1,2] [--batches 1,8] [--gpu [--device cuda|cuda-emu]]   run the benchmarks\n       secvit info                                     show the backends');
  process.exitCode = command === 'help' || command === '--help' ? 0 : 2;
}
