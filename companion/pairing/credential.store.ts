/**
 * The device credential file, `credential.json` in the companion's data
 * directory: the directory is kept at mode 0700 and the file at 0600, so only
 * the workstation user can read it (DESIGN.md "Trust boundaries").
 */
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../../common/logger';
import { CredentialStoreError } from '../companion.errors';

/** File name of the credential inside the data directory. */
export const CREDENTIAL_FILE = 'credential.json' as const;

const StoredCredentialSchema = z.object({
  /** Device id the bot issued (UUID). */
  deviceId: z.string().uuid(),
  /** Bearer credential `<deviceId>.<secret>`. Secret: never logged. */
  credential: z.string().min(40),
  /** Person the companion is paired with. */
  personName: z.string(),
  /** Bot base URL the credential belongs to (a credential is not sent to another bot). */
  botUrl: z.string().url(),
  /** ISO 8601 time of pairing. */
  pairedAt: z.string().datetime(),
});
export type StoredCredential = z.infer<typeof StoredCredentialSchema>;

/** Reads, writes and deletes the credential file. */
export class CredentialStore {
  /** Absolute path of the credential file. */
  readonly path: string;

  /**
   * @param dataDir - the companion data directory (created 0700 on first write)
   * @param logger - for non-secret facts only (paths, error codes)
   */
  constructor(private readonly dataDir: string, private readonly logger: Logger) {
    this.path = join(dataDir, CREDENTIAL_FILE);
  }

  /**
   * Read the stored credential for a bot.
   *
   * A file that does not parse, or belongs to another bot URL, is treated as
   * absent (and logged by reason, never by content) so the companion pairs again.
   *
   * @param botUrl - the configured bot base URL
   * @returns the credential, or null when there is none usable
   * @throws CredentialStoreError `CREDENTIAL.READ_FAILED` when the file exists but cannot be read
   */
  async read(botUrl: URL): Promise<StoredCredential | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CredentialStoreError('READ_FAILED', `cannot read ${this.path}`, err);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.logger.warn({ path: this.path }, 'credential file is not JSON; pairing again');
      return null;
    }
    const parsed = StoredCredentialSchema.safeParse(json);
    if (!parsed.success) {
      this.logger.warn({ path: this.path, field: parsed.error.issues[0]?.path.join('.') }, 'credential file is not valid; pairing again');
      return null;
    }
    if (parsed.data.botUrl !== botUrl.href) {
      this.logger.warn({ path: this.path }, 'credential file belongs to another bot URL; pairing again');
      return null;
    }
    // Tighten permissions if someone loosened them.
    await this.ensurePrivate().catch(() => undefined);
    return parsed.data;
  }

  /**
   * Store a credential atomically (write a 0600 temp file, then rename over the old one).
   *
   * @param credential - what pairing returned
   * @throws CredentialStoreError `CREDENTIAL.WRITE_FAILED`
   */
  async write(credential: StoredCredential): Promise<void> {
    const checked = StoredCredentialSchema.parse(credential);
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
      await chmod(this.dataDir, 0o700);
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(checked, null, 2)}\n`, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      await chmod(tmp, 0o600);
      await rename(tmp, this.path);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new CredentialStoreError('WRITE_FAILED', `cannot write ${this.path}`, err);
    }
    this.logger.info({ path: this.path, deviceId: checked.deviceId }, 'credential stored');
  }

  /** Delete the credential (after the bot revoked it); no error when there is none. */
  async delete(): Promise<void> {
    await rm(this.path, { force: true });
    this.logger.info({ path: this.path }, 'credential deleted');
  }

  private async ensurePrivate(): Promise<void> {
    const st = await stat(this.path);
    if ((st.mode & 0o077) !== 0) await chmod(this.path, 0o600);
    const dir = await stat(this.dataDir);
    if ((dir.mode & 0o077) !== 0) await chmod(this.dataDir, 0o700);
  }
}
