/**
 * The reader the person chose in the tray menu, kept across restarts in the
 * companion's data directory (`reader-choice.json`, 0600): `{ "reader": "<name>" }`,
 * or `{ "reader": null }` for any reader. No file: the configured reader
 * (`COMPANION_READER_NAME`) or any.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

const CHOICE_FILE = 'reader-choice.json' as const;
const ChoiceSchema = z.object({ reader: z.string().min(1).max(256).nullable() });

/** Reads and writes the saved reader choice. */
export class ReaderChoiceStore {
  private readonly path: string;

  /** @param dataDir - the companion's data directory (exists, 0700) */
  constructor(dataDir: string) {
    this.path = join(dataDir, CHOICE_FILE);
  }

  /**
   * The saved choice.
   *
   * @returns `{ reader }` (null = any reader), or undefined when none was saved or the file is not a choice
   */
  async read(): Promise<{ reader: string | null } | undefined> {
    const text = await readFile(this.path, 'utf8').catch(() => null);
    if (text === null) return undefined;
    try {
      const parsed = ChoiceSchema.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Save a choice (atomically).
   *
   * @param reader - a reader name, or null for any reader
   * @throws NodeJS.ErrnoException when the file cannot be written
   */
  async write(reader: string | null): Promise<void> {
    const temp = `${this.path}.${process.pid}.tmp`;
    await writeFile(temp, `${JSON.stringify({ reader })}\n`, { mode: 0o600 });
    await rename(temp, this.path);
  }
}
