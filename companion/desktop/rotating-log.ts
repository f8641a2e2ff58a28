/**
 * The companion's log file, rotated by size (issue #13 "Logs go to a per-user
 * file that rotates"). pino's own destination (sonic-boom, synchronous writes)
 * writes the live file; when it has grown past the limit, the files shift
 * (`companion.log.2` -> `companion.log.3`, `companion.log.1` -> `.2`, the live
 * file -> `.1`, the oldest beyond `keep` dropped) and the destination reopens a
 * new live file, 0600 like the others. The live file keeps its name, so a
 * person (or support) always finds the newest lines at the same path.
 *
 * Rotation happens between whole lines: a line is never split across files.
 */
import { renameSync, rmSync, statSync } from 'node:fs';
import { pino, type DestinationStream } from 'pino';

/** A pino destination that rotates its file. */
export interface RotatingLog extends DestinationStream {
  /** Write what is buffered now (writes are synchronous; kept for pino's `flush`). */
  flushSync(): void;
}

/**
 * Open (append to) a size-rotated log file.
 *
 * @param options.file - absolute path of the live log file; its directory is created (0700) when missing
 * @param options.maxBytes - rotate once the live file holds at least this many bytes (>= 1)
 * @param options.keep - rotated files kept beside the live one (`<file>.1` newest ... `<file>.<keep>` oldest), 1-20
 * @returns the destination to give `createLogger`
 * @throws NodeJS.ErrnoException when the file cannot be opened (e.g. EACCES)
 */
export function openRotatingLog(options: { file: string; maxBytes: number; keep: number }): RotatingLog {
  const { file, maxBytes, keep } = options;
  const dest = pino.destination({ dest: file, sync: true, mode: 0o600, mkdir: true });
  let size = fileSize(file);

  const rotate = (): void => {
    try {
      rmSync(`${file}.${keep}`, { force: true });
      for (let i = keep - 1; i >= 1; i--) moveIfThere(`${file}.${i}`, `${file}.${i + 1}`);
      moveIfThere(file, `${file}.1`);
      dest.reopen();
      size = 0;
    } catch {
      // A rotation the file system refuses (EACCES, EBUSY) must not end the companion: keep writing to
      // the file that is open and try again after another `maxBytes`.
      size = 0;
    }
  };

  return {
    write(line: string): void {
      dest.write(line);
      size += Buffer.byteLength(line);
      if (size >= maxBytes) rotate();
    },
    flushSync(): void {
      dest.flushSync();
    },
  };
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function moveIfThere(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
