import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger';
import { CredentialStore, type StoredCredential } from './credential.store';

const logger = createLogger({ name: 'cred-spec', level: 'silent' });
const BOT = new URL('http://127.0.0.1:3978');
const CRED: StoredCredential = {
  deviceId: '7b0f4f1e-6a52-4f57-9d55-6c1c0f3c2a11',
  credential: `7b0f4f1e-6a52-4f57-9d55-6c1c0f3c2a11.${'q'.repeat(43)}`,
  personName: 'Alex Wilber',
  botUrl: BOT.href,
  pairedAt: '2026-01-01T10:00:00.000Z',
};

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'cred-spec-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('CredentialStore', () => {
  it('writes credential.json 0600 in a 0700 directory and reads it back', async () => {
    const dir = join(root, 'data');
    const store = new CredentialStore(dir, logger);
    expect(await store.read(BOT)).toBeNull();
    await store.write(CRED);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(store.path)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(store.path, 'utf8'))).toEqual(CRED);
    expect(await store.read(BOT)).toEqual(CRED);
  });

  it('tightens a loosened file and directory when reading', async () => {
    const store = new CredentialStore(root, logger);
    await store.write(CRED);
    await chmod(store.path, 0o644);
    await chmod(root, 0o755);
    await store.read(BOT);
    expect((await stat(store.path)).mode & 0o777).toBe(0o600);
    expect((await stat(root)).mode & 0o777).toBe(0o700);
  });

  it('treats a corrupt file, a wrong shape or another bot URL as no credential', async () => {
    const store = new CredentialStore(root, logger);
    await writeFile(store.path, '{not json', { mode: 0o600 });
    expect(await store.read(BOT)).toBeNull();
    await writeFile(store.path, JSON.stringify({ ...CRED, deviceId: 'x' }), { mode: 0o600 });
    expect(await store.read(BOT)).toBeNull();
    await store.write(CRED);
    expect(await store.read(new URL('http://127.0.0.1:4000'))).toBeNull();
  });

  it('deletes the file (and deleting nothing is fine)', async () => {
    const store = new CredentialStore(root, logger);
    await store.write(CRED);
    await store.delete();
    await expect(stat(store.path)).rejects.toMatchObject({ code: 'ENOENT' });
    await store.delete();
  });
});
