// Writes that never leave a half-written file behind: the bytes go to a temporary file beside
// the target, are flushed, then renamed over it. A failure (a full disk, a missing folder) removes
// the temporary file and leaves the previous file as it was.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

export function writeFileAtomic(file: string, bytes: Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    let at = 0;
    while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) try { closeSync(fd); } catch { /* already failing */ }
    rmSync(tmp, { force: true });
    throw new Error(`cannot write ${file}: ${(e as Error).message} (the previous file, if any, is unchanged)`);
  }
}
