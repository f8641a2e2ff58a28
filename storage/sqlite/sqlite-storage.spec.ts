import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../common/app-error';
import { hashAnswer, normaliseAnswer } from '../../bot/security/answers';
import { generateSecret, generateUserCode, keyedHash, normaliseUserCode } from '../../bot/security/codes';
import { deriveKeys, generateMasterKey, parseMasterKey } from '../../bot/security/keys';
import { seal, unseal } from '../../bot/security/seal';
import { runStorageConformance } from '../storage.conformance';
import { STORAGE_ERROR } from '../storage.errors';
import { openStorage } from '../storage.factory';
import { at, fakeSealed, makeAuditEntry, makeCard, makeCase, makeConversation, makeDevice, makeEffect, makeJourney, makePairing, makePerson } from '../storage.fixtures';
import { openSqliteStorage, type SqliteStorage } from './sqlite-storage.adapter';
import { LATEST_SCHEMA_VERSION, MIGRATIONS } from './sqlite.migrations';

const here = dirname(fileURLToPath(import.meta.url));
const projectRoot = resolve(here, '..', '..');
const childScript = join(here, 'sqlite-storage.child.ts');

const root = mkdtempSync(join(tmpdir(), 'sca-sqlite-spec-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A fresh directory and database path under the suite's temp root. */
function freshFile(): string {
  const dir = mkdtempSync(join(root, 'db-'));
  return join(dir, 'data', 'store.db');
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a refusal');
}

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a throw');
}

/** All bytes of the database and its WAL/SHM files. */
function storeBytes(file: string): Buffer {
  const dir = dirname(file);
  return Buffer.concat(readdirSync(dir).filter((f) => f.startsWith('store.db')).map((f) => readFileSync(join(dir, f))));
}

runStorageConformance('sqlite', async () => openSqliteStorage({ file: freshFile() }), {
  // Another process's connection to the same file (a second bot instance on one embedded store).
  sibling: async (s) => openSqliteStorage({ file: (s as SqliteStorage).settings().file }),
});

describe('sqlite storage: settings and schema', () => {
  it('opens in WAL mode with synchronous=FULL, a busy timeout and the latest schema; creates the data directory', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file, busyTimeoutMs: 1234 });
    expect(s.settings()).toEqual({ file, journalMode: 'wal', synchronous: 2, busyTimeoutMs: 1234, schemaVersion: LATEST_SCHEMA_VERSION });
    await s.close();
    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(raw.prepare('SELECT version, name FROM schema_version ORDER BY version').all()).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    raw.close();
  });

  it('creates the data directory and the database files private to the owner', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    await s.persons.insert(makePerson());
    const mode = (path: string) => statSync(path).mode & 0o777;
    expect(mode(dirname(file))).toBe(0o700);
    expect(mode(file)).toBe(0o600);
    expect(mode(`${file}-wal`)).toBe(0o600);
    await s.close();
  });

  it('reopening does not migrate twice', async () => {
    const file = freshFile();
    await openSqliteStorage({ file }).close();
    const again = openSqliteStorage({ file });
    expect(again.settings().schemaVersion).toBe(LATEST_SCHEMA_VERSION);
    await again.close();
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare('SELECT COUNT(*) AS n FROM schema_version').get()).toEqual({ n: MIGRATIONS.length });
    raw.close();
  });

  it('refuses a store written by a newer schema', async () => {
    const file = freshFile();
    await openSqliteStorage({ file }).close();
    const raw = new Database(file);
    raw.prepare('INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)').run(LATEST_SCHEMA_VERSION + 1, 'future', at(0));
    raw.close();
    const err = thrown(() => openSqliteStorage({ file }));
    expect(err.code).toBe(STORAGE_ERROR.SCHEMA_TOO_NEW);
    expect(err.message).toMatch(/newer/);
  });

  it('refuses a file that is not a database with STORAGE.UNAVAILABLE', () => {
    const file = freshFile();
    openSqliteStorage({ file }).close();
    writeFileSync(file, 'this is not an SQLite database, just text that is long enough to have a header '.repeat(20));
    for (const f of ['-wal', '-shm']) rmSync(file + f, { force: true });
    expect(thrown(() => openSqliteStorage({ file })).code).toBe(STORAGE_ERROR.UNAVAILABLE);
  });

  it('after close every call is refused with STORAGE.UNAVAILABLE; close twice is fine', async () => {
    const s = openSqliteStorage({ file: freshFile() });
    await s.close();
    await s.close();
    expect((await rejection(s.ping())).code).toBe(STORAGE_ERROR.UNAVAILABLE);
    expect((await rejection(s.persons.get(randomUUID()))).code).toBe(STORAGE_ERROR.UNAVAILABLE);
  });

  it('a damaged JSON column is reported as STORAGE.CORRUPT_RECORD without its content', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const j = makeJourney();
    await s.journeys.insert(j);
    const raw = new Database(file);
    raw.pragma('ignore_check_constraints = ON');
    raw.prepare('UPDATE journeys SET state = ? WHERE key = ?').run('{"broken": secret-ish', j.key);
    raw.close();
    const err = await rejection(s.journeys.get(j.key));
    expect(err.code).toBe(STORAGE_ERROR.CORRUPT_RECORD);
    expect(err.message).toMatch(/journeys\.state/);
    expect(err.message).not.toContain('secret-ish');
    await s.close();
  });

  it('listWithPendingEffects leaves out a record it cannot read, reports its key, and returns the others', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const bad = makeJourney({ updatedAt: at(1), pendingEffects: [makeEffect()] });
    const good = makeJourney({ updatedAt: at(2), pendingEffects: [makeEffect()] });
    for (const j of [bad, good]) await s.journeys.insert(j);
    const raw = new Database(file);
    raw.pragma('ignore_check_constraints = ON');
    raw.prepare('UPDATE journeys SET counters = ? WHERE key = ?').run(JSON.stringify({ answerAttempts: 'x' }), bad.key);
    raw.close();
    const unreadable: Array<{ key: string; code: string; message: string }> = [];
    const listed = await s.journeys.listWithPendingEffects(10, { onUnreadable: (key, err) => unreadable.push({ key, code: err.code, message: err.message }) });
    expect(listed.map((j) => j.key)).toEqual([good.key]);
    expect(unreadable).toEqual([{ key: bad.key, code: STORAGE_ERROR.CORRUPT_RECORD, message: expect.stringMatching(/counters/) }]);
    // Without a listener the good records still come back.
    expect((await s.journeys.listWithPendingEffects(10)).map((j) => j.key)).toEqual([good.key]);
    await s.close();
  });

  it('the factory opens the sqlite kind and refuses an unknown kind', async () => {
    const file = freshFile();
    const s = await openStorage({ kind: 'sqlite', file });
    const p = makePerson();
    await s.persons.insert(p);
    await s.close();
    const again = await openStorage({ kind: 'sqlite', file });
    expect(await again.persons.get(p.id)).toEqual(p);
    await again.close();
    await expect(openStorage({ kind: 'postgres' } as never)).rejects.toMatchObject({ code: 'CONFIG.STORAGE_KIND_UNKNOWN' });
  });
});

describe('sqlite storage: group commit', () => {
  it('writes issued together share one commit; awaited writes commit one by one', async () => {
    const s = openSqliteStorage({ file: freshFile() });
    const people = Array.from({ length: 100 }, () => makePerson());
    await Promise.all(people.map((p) => s.persons.insert(p)));
    expect(s.stats()).toEqual({ writes: 100, commits: 1 });
    for (const p of people.slice(0, 5)) await s.persons.save({ ...p, displayName: 'x' }, 1);
    expect(s.stats()).toEqual({ writes: 105, commits: 6 });
    for (const p of people) expect((await s.persons.get(p.id))?.teamsUserId).toBe(p.teamsUserId);
    await s.close();
  });

  it('close commits writes already issued, and their promises resolve', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const p = makePerson();
    const pending = s.persons.insert(p);
    await s.close();
    expect((await pending).status).toBe('created');
    const again = openSqliteStorage({ file });
    expect(await again.persons.get(p.id)).toEqual(p);
    await again.close();
  });

  it('a failing commit rejects every write of its batch and stores none of them', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file, busyTimeoutMs: 50 });
    // Another connection holds the write lock, so BEGIN IMMEDIATE gives up after the busy timeout.
    const blocker = new Database(file);
    blocker.exec('BEGIN IMMEDIATE');
    const people = [makePerson(), makePerson()];
    const results = await Promise.allSettled(people.map((p) => s.persons.insert(p)));
    blocker.exec('ROLLBACK');
    blocker.close();
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: STORAGE_ERROR.UNAVAILABLE });
    }
    for (const p of people) expect(await s.persons.get(p.id)).toBeNull();
    await s.close();
  });
});

describe('sqlite storage: audit log is append-only', () => {
  it('the database itself refuses UPDATE and DELETE on audit rows', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const e = makeAuditEntry();
    await s.audit.append(e);
    const raw = new Database(file);
    expect(() => raw.prepare('UPDATE audit SET action = ? WHERE id = ?').run('rewritten', e.id)).toThrow(/append-only/);
    expect(() => raw.prepare('DELETE FROM audit WHERE id = ?').run(e.id)).toThrow(/append-only/);
    raw.close();
    expect(await s.audit.list({ limit: 10 })).toEqual([e]);
    await s.close();
  });
});

describe('sqlite storage: crash safety', () => {
  it('finds every committed record after close and reopen', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const p = makePerson();
    const c = makeCard({ personId: p.id, cardId: p.cardId! });
    const j = makeJourney({ personId: p.id, pendingEffects: [makeEffect()] });
    const d = makeDevice({ personId: p.id });
    const pr = makePairing();
    const e = makeAuditEntry({ personId: p.id });
    await s.persons.insert(p);
    await s.cards.insert(c);
    await s.journeys.insert(j);
    await s.journeys.save({ ...j, counters: { failedAnswers: 1 } }, 1);
    await s.devices.insert(d);
    await s.pairings.insert(pr);
    await s.audit.append(e);
    await s.close();
    const again = openSqliteStorage({ file });
    expect(await again.persons.get(p.id)).toEqual(p);
    expect(await again.cards.get(c.cardId)).toEqual(c);
    expect(await again.journeys.get(j.key)).toEqual({ ...j, counters: { failedAnswers: 1 }, version: 2 });
    expect(await again.journeys.listWithPendingEffects(10)).toHaveLength(1);
    expect(await again.devices.get(d.id)).toEqual(d);
    expect(await again.pairings.getByUserCodeHash(pr.userCodeHash)).toEqual(pr);
    expect(await again.audit.list({ limit: 10 })).toEqual([e]);
    await again.close();
  });

  it('a process killed (SIGKILL) mid-write loses nothing it reported committed', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const j = makeJourney({ counters: { n: 0 } });
    await s.journeys.insert(j);
    await s.close();

    const child = spawn(process.execPath, ['--import', 'tsx', childScript, 'crash', file, j.key], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const committed: { id: string; n: number }[] = [];
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    let buffered = '';
    const exited = new Promise<NodeJS.Signals | number | null>((done) => child.on('exit', (code, signal) => done(signal ?? code)));
    await new Promise<void>((done, fail) => {
      child.stdout.on('data', (b: Buffer) => {
        buffered += b.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const line of lines) {
          const [, id, n] = line.split(' ');
          committed.push({ id: id!, n: Number(n) });
        }
        if (committed.length >= 150) {
          child.kill('SIGKILL');
          done();
        }
      });
      child.on('exit', () => (committed.length >= 150 ? done() : fail(new Error(`child exited early: ${stderr}`))));
    });
    expect(await exited).toBe('SIGKILL');

    const again = openSqliteStorage({ file });
    const stored = new Set((await again.audit.list({ limit: 10_000 })).map((e) => e.id));
    for (const { id } of committed) expect(stored.has(id)).toBe(true);
    const last = committed[committed.length - 1]!.n;
    // The journey holds the last reported value, or the one after it if that write committed just before the kill.
    expect([last, last + 1]).toContain((await again.journeys.get(j.key))!.counters.n);
    await again.close();
  }, 60_000);

  it('several processes doing read-increment-save on one journey lose no increment', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const j = makeJourney({ counters: { n: 0 } });
    await s.journeys.insert(j);
    const processes = 4;
    const perProcess = 25;
    const runs = Array.from({ length: processes }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', childScript, 'increment', file, j.key, String(perProcess)], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      return new Promise<string>((done, fail) => child.on('exit', (code) => (code === 0 ? done(out) : fail(new Error(`child failed (${code}): ${err}`)))));
    });
    // This process writes too, through its own connection.
    for (let i = 0; i < perProcess; i++) {
      for (;;) {
        const cur = (await s.journeys.get(j.key))!;
        if ((await s.journeys.save({ ...cur, counters: { n: cur.counters.n! + 1 } }, cur.version)) === 'saved') break;
      }
    }
    const outputs = await Promise.all(runs);
    for (const out of outputs) expect(out).toMatch(/^done \d+\n$/);
    const stored = (await s.journeys.get(j.key))!;
    expect(stored.counters.n).toBe((processes + 1) * perProcess);
    expect(stored.version).toBe(1 + (processes + 1) * perProcess);
    await s.close();
  }, 60_000);

  it('several processes racing rate hits on one key record exactly the limit (check and insert in one write transaction)', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const key = `test.race:${randomUUID()}`;
    const processes = 4;
    const perProcess = 40;
    const limit = 37;
    const runs = Array.from({ length: processes }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', childScript, 'ratehits', file, key, String(perProcess), String(limit)], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      return new Promise<string>((done, fail) => child.on('exit', (code) => (code === 0 ? done(out) : fail(new Error(`child failed (${code}): ${err}`)))));
    });
    const outputs = await Promise.all(runs);
    const recorded = outputs.map((out) => Number(/^done (\d+)\n$/.exec(out)?.[1] ?? NaN));
    expect(recorded.reduce((a, b) => a + b, 0), `recorded per process: ${recorded.join(', ')}`).toBe(limit);
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare('SELECT count(*) AS n, min(n) AS lo, max(n) AS hi FROM rate_hits WHERE key = ?').get(key)).toEqual({ n: limit, lo: 0, hi: limit - 1 });
    raw.close();
    await s.close();
  }, 60_000);
});

describe('sqlite storage: no plaintext secret at rest', () => {
  it('stores only sealed and hashed forms: no plaintext PUK, code, answer or credential anywhere in the files', async () => {
    const keys = deriveKeys(parseMasterKey(generateMasterKey()));
    const PUK = '73914062';
    const NEXT_PUK = '55012349';
    const CODE = '40917253';
    const answers = ['Fluffy the Cat', 'St Mary Mead', 'Blue Peter Badge', 'Nineteen Eighty-Four'];
    const userCode = generateUserCode();
    const credential = generateSecret();
    const deviceCode = generateSecret();

    const file = freshFile();
    const s = openSqliteStorage({ file });
    const person = makePerson({ answers: await Promise.all(answers.map((a, i) => hashAnswer(`q0${i + 1}`, a))) });
    const cardId = person.cardId!;
    const sealedPuk = seal(keys.sealKey, PUK, `puk:${cardId}`);
    await s.persons.insert(person);
    await s.cards.insert(makeCard({ cardId, personId: person.id, puk: sealedPuk, pendingPuk: seal(keys.sealKey, NEXT_PUK, `puk:${cardId}`) }));
    await s.pairings.insert(
      makePairing({ userCodeHash: keyedHash(keys.codeHashKey, 'pairing-user-code', normaliseUserCode(userCode)!), deviceCodeHash: keyedHash(keys.codeHashKey, 'pairing-device-code', deviceCode) }),
    );
    await s.devices.insert(makeDevice({ personId: person.id, credentialHash: keyedHash(keys.credentialHashKey, 'device-credential', credential) }));
    await s.journeys.insert(
      makeJourney({
        personId: person.id,
        state: { step: 'await_code', codeHash: keyedHash(keys.codeHashKey, 'unlock-code', CODE), expiresAt: at(900) },
        pendingEffects: [makeEffect({ type: 'companion.unblock', payload: { cardId, puk: seal(keys.sealKey, PUK, `puk-transfer:${cardId}`) } })],
      }),
    );
    await s.audit.append(makeAuditEntry({ personId: person.id, action: 'unlock.code_sent', details: { cardId } }));

    // A plaintext PUK is refused outright, so it never reaches the file either.
    const refused = makeCard({ puk: '31415926' });
    expect((await rejection(s.cards.insert(refused))).code).toBe(STORAGE_ERROR.INVALID_RECORD);

    const plaintexts = [PUK, NEXT_PUK, CODE, '31415926', userCode, normaliseUserCode(userCode)!, credential, deviceCode, ...answers, ...answers.map(normaliseAnswer)];
    const check = (bytes: Buffer) => {
      // The search works: non-secret values we stored are found.
      expect(bytes.includes(Buffer.from(person.email))).toBe(true);
      for (const secret of plaintexts) expect(bytes.includes(Buffer.from(secret, 'utf8')), `plaintext found: ${secret.length} chars`).toBe(false);
    };
    check(storeBytes(file)); // while open: data sits in the WAL
    await s.close();
    check(storeBytes(file)); // after the checkpoint into the main file

    // And what is stored still opens with the key (so the test looked at real sealed values).
    const again = openSqliteStorage({ file });
    expect(unseal(keys.sealKey, (await again.cards.get(cardId))!.puk!, `puk:${cardId}`)).toBe(PUK);
    await again.close();
  });

  it('every column that could hold a secret holds a sealed value or a hash', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    await s.cards.insert(makeCard());
    await s.devices.insert(makeDevice());
    await s.pairings.insert(makePairing());
    await s.persons.insert(makePerson());
    await s.close();
    const raw = new Database(file, { readonly: true });
    const tables = (raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[]).map((t) => t.name);
    const secretish = /pin|passcode|puk|code|answer|credential|secret|token|password/i;
    const columns = tables.flatMap((table) => (raw.prepare(`SELECT name FROM pragma_table_info(?)`).all(table) as { name: string }[]).map((c) => `${table}.${c.name}`));
    const flagged = columns.filter((c) => secretish.test(c.split('.')[1]!));
    expect(flagged.sort()).toEqual(['cards.pending_puk', 'cards.puk', 'devices.credential_hash', 'pairings.device_code_hash', 'pairings.user_code_hash', 'persons.answers'].sort());
    for (const row of raw.prepare('SELECT puk FROM cards').all() as { puk: string }[]) expect(row.puk).toMatch(/^v1\.[\w-]{16}\.[\w-]*\.[\w-]{22}$/);
    for (const row of raw.prepare('SELECT credential_hash AS h FROM devices UNION ALL SELECT device_code_hash FROM pairings UNION ALL SELECT user_code_hash FROM pairings').all() as { h: string }[]) {
      expect(row.h).toMatch(/^[0-9a-f]{64}$/);
    }
    for (const row of raw.prepare('SELECT answers FROM persons').all() as { answers: string }[]) {
      for (const a of JSON.parse(row.answers) as Record<string, unknown>[]) expect(Object.keys(a).sort()).toEqual(['hash', 'params', 'questionId', 'salt']);
    }
    // The database refuses a non-sealed PUK even when the adapter is bypassed.
    const rw = new Database(file);
    expect(() => rw.prepare("UPDATE cards SET puk = '12345678'").run()).toThrow(/CHECK constraint/);
    rw.close();
    raw.close();
  });
});

describe('sqlite storage: files written by earlier releases', () => {
  /**
   * The row layout of schema version 1, as the hand-written mappers of the first release wrote it:
   * snake_case columns, nested values as JSON text, `journeys.pending_count` derived. Frozen here on
   * purpose: the derived codecs must read these rows unchanged and write the same layout.
   */
  function v1Rows(p: ReturnType<typeof makePerson>, c: ReturnType<typeof makeCard>, j: ReturnType<typeof makeJourney>, d: ReturnType<typeof makeDevice>, pr: ReturnType<typeof makePairing>, rc: ReturnType<typeof makeCase>, e: ReturnType<typeof makeAuditEntry>, conv: ReturnType<typeof makeConversation>) {
    return {
      persons: {
        id: p.id, teams_user_id: p.teamsUserId, display_name: p.displayName, email: p.email, mobile: p.mobile, answers: JSON.stringify(p.answers), card_id: p.cardId,
        self_service_lock: p.selfServiceLock === null ? null : JSON.stringify(p.selfServiceLock), created_at: p.createdAt, updated_at: p.updatedAt, version: p.version,
      },
      cards: { card_id: c.cardId, person_id: c.personId, puk: c.puk, pending_puk: c.pendingPuk, updated_at: c.updatedAt, version: c.version },
      journeys: {
        key: j.key, person_id: j.personId, kind: j.kind, run_id: j.runId, state: JSON.stringify(j.state), counters: JSON.stringify(j.counters), pending_effects: JSON.stringify(j.pendingEffects),
        pending_count: j.pendingEffects.length, ui: JSON.stringify({ activityId: j.ui.activityId }), created_at: j.createdAt, updated_at: j.updatedAt, version: j.version,
      },
      devices: {
        id: d.id, person_id: d.personId, workstation: d.workstation, credential_hash: d.credentialHash, created_at: d.createdAt, last_seen_at: d.lastSeenAt, revoked_at: d.revokedAt,
        connected_instance: d.connectedInstance, version: d.version,
      },
      pairings: {
        id: pr.id, device_code_hash: pr.deviceCodeHash, user_code_hash: pr.userCodeHash, workstation: pr.workstation, status: pr.status, person_id: pr.personId, device_id: pr.deviceId,
        created_at: pr.createdAt, expires_at: pr.expiresAt, last_polled_at: pr.lastPolledAt, version: pr.version,
      },
      cases: {
        ref: rc.ref, person_id: rc.personId, reason: rc.reason, status: rc.status, context: JSON.stringify(rc.context), source_id: rc.sourceId, created_at: rc.createdAt, updated_at: rc.updatedAt,
        version: rc.version,
      },
      audit: { id: e.id, at: e.at, actor: e.actor, action: e.action, person_id: e.personId, details: JSON.stringify(e.details) },
      conversations: { person_id: conv.personId, reference: JSON.stringify(conv.reference), updated_at: conv.updatedAt },
    } as const;
  }

  function sampleRecords() {
    const p = makePerson({ selfServiceLock: { at: at(5), caseRef: 'RA-7K2Q9D', reason: 'answers_failed' }, mobile: null });
    const c = makeCard({ personId: p.id, cardId: p.cardId!, pendingPuk: fakeSealed() });
    const j = makeJourney({ personId: p.id, pendingEffects: [makeEffect({ attempts: 2 })], counters: { failedAnswers: 2 }, ui: { activityId: 'act-1' }, state: null });
    const d = makeDevice({ personId: p.id, lastSeenAt: at(9), connectedInstance: 'bot-a' });
    const pr = makePairing({ status: 'approved', personId: p.id });
    const rc = makeCase({ personId: p.id });
    const e = makeAuditEntry({ personId: p.id });
    const conv = makeConversation({ personId: p.id });
    return { p, c, j, d, pr, rc, e, conv };
  }

  it('reads a schema-1 file whose rows were written by the first release, and keeps writing the same layout', async () => {
    const file = freshFile();
    mkdirSync(dirname(file), { recursive: true });
    const raw = new Database(file);
    // Exactly what release 1 did: migration 1 and its schema_version row, nothing newer.
    const v1 = MIGRATIONS.find((m) => m.version === 1)!;
    raw.exec('CREATE TABLE schema_version (version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT');
    raw.exec(v1.sql);
    raw.prepare('INSERT INTO schema_version (version, name, applied_at) VALUES (1, ?, ?)').run(v1.name, at(0));
    const r = sampleRecords();
    const rows = v1Rows(r.p, r.c, r.j, r.d, r.pr, r.rc, r.e, r.conv);
    for (const [table, row] of Object.entries(rows)) {
      const cols = Object.keys(row);
      raw.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES (${cols.map((k) => `@${k}`).join(', ')})`).run(row);
    }
    raw.close();

    const s = openSqliteStorage({ file });
    expect(await s.persons.get(r.p.id)).toEqual(r.p);
    expect(await s.persons.findByTeamsUserId(r.p.teamsUserId)).toEqual(r.p);
    expect(await s.persons.findByCardId(r.p.cardId!)).toEqual(r.p);
    expect(await s.cards.get(r.c.cardId)).toEqual(r.c);
    expect(await s.journeys.get(r.j.key)).toEqual(r.j);
    expect(await s.journeys.listWithPendingEffects(10)).toEqual([r.j]);
    expect(await s.devices.listByPerson(r.p.id)).toEqual([r.d]);
    expect(await s.pairings.getByDeviceCodeHash(r.pr.deviceCodeHash)).toEqual(r.pr);
    expect(await s.cases.listOpen(10)).toEqual([r.rc]);
    expect(await s.audit.list({ personId: r.p.id, limit: 10 })).toEqual([r.e]);
    expect(await s.conversations.get(r.p.id)).toEqual(r.conv);

    // Written by this release: the same columns and encodings (an older reader of the file still understands it).
    const next = sampleRecords();
    await s.persons.save({ ...r.p, displayName: 'Renamed' }, 1);
    await s.journeys.countEffectAttempt(r.j.key, [r.j.pendingEffects[0]!.id]);
    await Promise.all([s.persons.insert(next.p), s.cards.insert(next.c), s.journeys.insert(next.j), s.devices.insert(next.d), s.pairings.insert(next.pr), s.cases.insert(next.rc), s.audit.append(next.e), s.conversations.put(next.conv)]);
    await s.close();
    const check = new Database(file, { readonly: true });
    const expected = v1Rows(next.p, next.c, next.j, next.d, next.pr, next.rc, next.e, next.conv);
    const keyCol: Record<string, string> = { persons: 'id', cards: 'card_id', journeys: 'key', devices: 'id', pairings: 'id', cases: 'ref', audit: 'id', conversations: 'person_id' };
    for (const [table, row] of Object.entries(expected)) {
      const stored = check.prepare(`SELECT * FROM ${table} WHERE ${keyCol[table]} = ?`).get((row as Record<string, unknown>)[keyCol[table]!]) as Record<string, unknown>;
      if (table === 'audit') delete stored.seq;
      expect(stored, table).toEqual(row);
    }
    const renamed = check.prepare('SELECT display_name, version FROM persons WHERE id = ?').get(r.p.id);
    expect(renamed).toEqual({ display_name: 'Renamed', version: 2 });
    const edited = check.prepare('SELECT pending_effects, version FROM journeys WHERE key = ?').get(r.j.key) as { pending_effects: string; version: number };
    expect(JSON.parse(edited.pending_effects)[0].attempts).toBe(3);
    expect(edited.version).toBe(1);
    check.close();
  });

  it('a stored row that breaks the record schema is CORRUPT_RECORD naming the field, never the value', async () => {
    const file = freshFile();
    const s = openSqliteStorage({ file });
    const p = makePerson();
    const c = makeCard({ personId: p.id });
    await s.persons.insert(p);
    await s.cards.insert(c);
    const raw = new Database(file);
    raw.prepare('UPDATE persons SET email = ? WHERE id = ?').run('NOT-AN-ADDRESS-secretish', p.id);
    raw.prepare('UPDATE cards SET updated_at = ? WHERE card_id = ?').run('yesterday-secretish', c.cardId);
    raw.close();
    const err = await rejection(s.persons.get(p.id));
    expect(err.code).toBe(STORAGE_ERROR.CORRUPT_RECORD);
    expect(err.message).toMatch(/persons\.email/);
    expect(err.message).not.toContain('secretish');
    expect(err.meta?.fields).toBe('email');
    const cardErr = await rejection(s.cards.get(c.cardId));
    expect(cardErr.code).toBe(STORAGE_ERROR.CORRUPT_RECORD);
    expect(cardErr.message).toMatch(/cards\.updatedAt/);
    expect(cardErr.message).not.toContain('secretish');
    await s.close();
  });
});
