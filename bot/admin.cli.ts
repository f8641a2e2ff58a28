/**
 * Admin command for the embedded store (until self-registration lands):
 *
 *   npm run admin -- add-person --file person.json     (or --file - for standard input)
 *   npm run admin -- seed-demo [--teams-user-id user-id-0]
 *   npm run admin -- import-puks --file puks.csv [--replace]   (CSV header: card_id,puk,holder_email)
 *   npm run admin -- cases                (alias: list-cases) open cases: ref, status, reason, person, owner, opened at
 *   npm run admin -- report --from YYYY-MM-DD --to YYYY-MM-DD [--csv]   usage per RA team (UTC days, both included)
 *   npm run admin -- reset-self-service --person <person id | email | Teams user id | card id> [--note TEXT]
 *   npm run admin -- revoke-device --device <device id> | --person <person id | email | Teams user id | card id>
 *
 * Secrets (answers, PUK) are read from a file or standard input, never from
 * the command line (they would land in shell history and the process list).
 * Uses the bot's configuration (SMARTCARD_DATA_DIR, SMARTCARD_MASTER_KEY[_FILE]).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { AppError } from '../common/app-error';
import { createLogger } from '../common/logger';
import { CardIdSchema, PukSchema } from '../protocol/companion-link.protocol';
import type { Person, Storage } from '../storage/storage.port';
import { openStorage } from '../storage/storage.factory';
import { loadConfig } from './config';
import { isQuestionId, QUESTION_BANK } from './journeys/registration/question-bank';
import { hashAnswerSet, normaliseAnswer } from './security/answers';
import { generatePuk } from './security/codes';
import { deriveKeys, parseMasterKey, type DerivedKeys } from './security/keys';
import { EffectRunner } from './journeys/effect-runner';
import { sealPuk } from './puk/puk.custody';
import { holderTag, isUnconfirmedOwner, UNASSIGNED_CARD_OWNER } from './puk/puk.rules';
import { EFFECT_NOT_HERE, JourneyEngine } from './journeys/journey.engine';
import { resetSelfService, type SelfServiceResetResult } from './journeys/unlock/self-service-reset';
import { unlockDefinition } from './journeys/unlock/unlock.definition';
import { DEFAULT_UNLOCK_RULES } from './journeys/unlock/unlock.journey';
import { registrationDefinition } from './journeys/registration/registration.definition';
import { revokeDevices, type RevocationOutcome } from './link/device-revocation';
import type { Logger } from '../common/logger';
import { journeyKey } from './journeys/journey.key';
import { decodeRaCase } from './journeys/ra-case/ra-case.state';
import { reportRangeFromDates, usageReportCsv, usageReportText } from './report/usage-report';
import { loadUsageReport } from './report/usage-report.loader';

const PersonFileSchema = z.object({
  teamsUserId: z.string().min(1).max(200),
  displayName: z.string().min(1).max(200),
  email: z.string().email('email is not an email address').transform((e) => e.toLowerCase()),
  mobile: z.string().regex(/^\+[1-9][0-9]{6,14}$/, 'mobile must be E.164, e.g. +447700900123').nullable().optional(),
  cardId: CardIdSchema,
  puk: PukSchema.nullable().optional(),
  answers: z
    .array(z.object({ questionId: z.string().refine(isQuestionId, 'questionId is not in the question bank'), answer: z.string().min(1).max(200) }))
    .length(4, 'exactly 4 answers are needed')
    .refine((a) => new Set(a.map((x) => x.questionId)).size === 4, 'the 4 questions must be different')
    .refine((a) => a.every((x) => normaliseAnswer(x.answer).length >= 3), 'each answer needs at least 3 characters'),
});
export type PersonFile = z.infer<typeof PersonFileSchema>;

/**
 * Store a registered person, their card and its PUK (sealed).
 *
 * @returns 'created', or 'exists' when the Teams user or card is already registered (nothing changed)
 * @throws AppError `INPUT.PERSON_FILE` naming the first invalid field (never its value)
 */
export async function addPerson(storage: Storage, keys: DerivedKeys, input: unknown): Promise<{ status: 'created' | 'exists'; personId: string }> {
  const parsed = PersonFileSchema.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new AppError('INPUT.PERSON_FILE', `person file refused: ${i?.path.join('.') || '(file)'}: ${i?.message ?? 'invalid'}`);
  }
  const p = parsed.data;
  const now = new Date().toISOString();
  const answers = await hashAnswerSet(p.answers);
  const person: Person = {
    id: randomUUID(),
    teamsUserId: p.teamsUserId,
    displayName: p.displayName,
    email: p.email,
    mobile: p.mobile ?? null,
    answers,
    cardId: p.cardId,
    selfServiceLock: null,
    createdAt: now,
    updatedAt: now,
    version: 1,
  };
  const existingCard = await storage.cards.get(p.cardId);
  if (existingCard && !isUnconfirmedOwner(existingCard.personId)) return { status: 'exists', personId: existingCard.personId };
  const r = await storage.persons.insert(person);
  if (r.status === 'exists') return { status: 'exists', personId: r.record.id };
  const puk = p.puk ? sealPuk(keys.sealKey, p.puk, p.cardId) : (existingCard?.puk ?? null);
  if (existingCard) {
    // Enrolled by a PUK import before anyone held it: bind it now.
    await storage.cards.save({ ...existingCard, personId: person.id, puk, updatedAt: now, version: existingCard.version + 1 }, existingCard.version);
  } else {
    await storage.cards.insert({ cardId: p.cardId, personId: person.id, puk, pendingPuk: null, updatedAt: now, version: 1 });
  }
  await storage.audit.append({ id: randomUUID(), at: now, actor: 'admin', action: 'person.added', personId: person.id, details: { cardId: p.cardId, pukEnrolled: !!p.puk } });
  return { status: 'created', personId: person.id };
}

/**
 * Enrol PUKs from the card-management system: CSV with a header `card_id,puk`,
 * one card per line. A card not yet registered is stored unassigned and bound
 * when its holder registers.
 *
 * @param csv - the file's text (UTF-8)
 * @param replace - also replace a PUK already enrolled (otherwise such lines are skipped)
 * @returns counts; refused lines are reported by line number and reason, never by value
 */
export async function importPuks(storage: Storage, keys: DerivedKeys, csv: string, replace = false): Promise<{ enrolled: number; replaced: number; skipped: number; refused: string[] }> {
  const lines = csv.split(/\r?\n/);
  const header = (lines[0] ?? '').trim().toLowerCase().replace(/\s/g, '');
  if (header !== 'card_id,puk' && header !== 'card_id,puk,holder_email') throw new AppError('INPUT.PUK_FILE', 'the first line must be the header card_id,puk,holder_email (or card_id,puk)');
  const withHolder = header.endsWith(',holder_email');
  const out = { enrolled: 0, replaced: 0, skipped: 0, refused: [] as string[] };
  const now = new Date().toISOString();
  for (let i = 1; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '') continue;
    const [rawId, rawPuk, ...rest] = line.split(',').map((x) => x.trim());
    const rawHolder = withHolder ? rest.shift() ?? '' : '';
    const id = CardIdSchema.safeParse((rawId ?? '').toLowerCase());
    const puk = PukSchema.safeParse(rawPuk ?? '');
    const holderOk = rawHolder === '' || z.string().email().safeParse(rawHolder).success;
    if (rest.length > 0 || !id.success || !puk.success || !holderOk) {
      out.refused.push(`line ${i + 1}: ${rest.length > 0 ? 'has too many fields' : !id.success ? 'card_id must be 32 hex digits (CHUID GUID)' : !puk.success ? 'puk must be 8 digits' : 'holder_email is not an email address'}`);
      continue;
    }
    // The holder named by the card-management system; the card binds when that person registers.
    const owner = rawHolder ? holderTag(keys.codeHashKey, rawHolder) : UNASSIGNED_CARD_OWNER;
    const cardId = id.data;
    const sealed = sealPuk(keys.sealKey, puk.data, cardId);
    let done = false;
    for (let attempt = 0; attempt < 5 && !done; attempt++) {
      const card = await storage.cards.get(cardId);
      if (!card) {
        const r = await storage.cards.insert({ cardId, personId: owner, puk: sealed, pendingPuk: null, updatedAt: now, version: 1 });
        if (r.status === 'created') {
          out.enrolled++;
          done = true;
        }
        continue;
      }
      if (card.puk && !replace) {
        out.skipped++;
        done = true;
        continue;
      }
      if ((await storage.cards.save({ ...card, puk: sealed, pendingPuk: null, updatedAt: now, version: card.version + 1 }, card.version)) === 'saved') {
        if (card.puk) out.replaced++;
        else out.enrolled++;
        done = true;
      }
    }
    if (done) await storage.audit.append({ id: randomUUID(), at: now, actor: 'admin', action: 'card.puk_enrolled', personId: null, details: { cardId, source: 'import' } });
    else out.refused.push(`line ${i + 1}: the card record kept changing; run the import again`);
  }
  return out;
}

/** The demo person's answers: shown to whoever runs the demo so they can try it. Demo data only. */
export const DEMO_ANSWERS = [
  { questionId: 'q01', answer: 'Acacia Avenue' },
  { questionId: 'q04', answer: 'Biscuit' },
  { questionId: 'q08', answer: 'Blur' },
  { questionId: 'q11', answer: 'Omelette' },
] as const;

/**
 * Find a person by id, Teams user id, card id, or registered email.
 *
 * @returns the person, or null when none matches
 * @throws AppError `INPUT.PERSON_AMBIGUOUS` when several persons are registered with the email (name one by id)
 */
export async function findPerson(storage: Storage, ref: string): Promise<Person | null> {
  const key = ref.trim();
  if (!key) return null;
  const direct = (await storage.persons.get(key)) ?? (await storage.persons.findByTeamsUserId(key)) ?? (/^[0-9a-f]{32}$/i.test(key) ? await storage.persons.findByCardId(key.toLowerCase()) : null);
  if (direct) return direct;
  if (!key.includes('@')) return null;
  const byEmail = await storage.persons.listByEmail(key);
  if (byEmail.length > 1) throw new AppError('INPUT.PERSON_AMBIGUOUS', `${byEmail.length} persons are registered with that email; give a person id (${byEmail.map((p) => p.id).join(', ')})`);
  return byEmail[0] ?? null;
}

/** One line of `admin cases`. */
export interface CaseListRow {
  ref: string;
  /** Display name and email, or the person id when the person is not stored. */
  person: string;
  reason: string;
  status: string;
  /** The RA member who claimed it, or `-`. */
  owner: string;
  openedAt: string;
}

/**
 * The cases not closed (open or claimed), oldest first, with the person and the owner.
 *
 * @param limit - most cases listed (1..10000)
 * @returns one row per case; the owner comes from the case journey (`<ref>:ra-case`), `-` when unclaimed
 */
export async function listCases(storage: Storage, limit = 500): Promise<CaseListRow[]> {
  const rows: CaseListRow[] = [];
  for (const c of await storage.cases.listActive(limit)) {
    const person = await storage.persons.get(c.personId);
    const rec = await storage.journeys.get(journeyKey(c.ref, 'ra-case'));
    let owner = '-';
    let status: string = c.status;
    if (rec) {
      try {
        const j = decodeRaCase(rec);
        owner = j.state.owner?.name ?? '-';
        if (j.state.status !== 'new') status = j.state.status;
      } catch {
        owner = '(case journey unreadable)';
      }
    }
    rows.push({ ref: c.ref, person: person ? `${person.displayName} <${person.email}>` : `person ${c.personId}`, reason: c.reason, status, owner, openedAt: c.createdAt });
  }
  return rows;
}

/** `admin cases` as aligned columns with a header (ref, status, reason, person, owner, opened at); a plain line when there are none. */
export function formatCases(rows: readonly CaseListRow[]): string {
  if (rows.length === 0) return 'no open cases\n';
  const head = { ref: 'REF', status: 'STATUS', reason: 'REASON', person: 'PERSON', owner: 'OWNER', openedAt: 'OPENED AT (UTC)' };
  // Reference first, then status and reason (scripts match `<ref> ... open ... answers_failed`).
  const cols = ['ref', 'status', 'reason', 'person', 'owner', 'openedAt'] as const;
  const width = Object.fromEntries(cols.map((k) => [k, Math.max(head[k].length, ...rows.map((r) => r[k].length))])) as Record<(typeof cols)[number], number>;
  const line = (r: Record<(typeof cols)[number], string>) => cols.map((k, i) => (i === cols.length - 1 ? r[k] : r[k].padEnd(width[k]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

/**
 * Reset a person's self-service unlock from the admin command (actor `admin`):
 * the same operation the RA desk calls ({@link resetSelfService}); its effects
 * (audit entry, clearing the lock mirror) are carried out before returning.
 *
 * @throws AppError `INPUT.PERSON_NOT_FOUND` when no person matches `ref`
 */
export async function adminResetSelfService(storage: Storage, keys: DerivedKeys, logger: Logger, ref: string, note: string | null): Promise<{ person: Person; result: SelfServiceResetResult }> {
  const person = await findPerson(storage, ref);
  if (!person) throw new AppError('INPUT.PERSON_NOT_FOUND', 'no person matches --person (give a person id, Teams user id, card id, or registered email)');
  // Effects of a concurrent step of the running bot may be pending on the same record:
  // this process cannot carry out mail, companion or Teams effects, so it leaves them to the bot.
  const offline = (): never => {
    throw new AppError(EFFECT_NOT_HERE, 'the admin command sends no mail, reaches no companion and updates no Teams card');
  };
  const runner = new EffectRunner({
    storage,
    link: { isConnected: () => false, isReachable: () => false, sendCommand: async () => offline() },
    mail: { send: async () => offline() },
    sealKey: keys.sealKey,
    codeHashKey: keys.codeHashKey,
    timeZone: 'UTC',
    raContact: '',
    codeTtlMinutes: 15,
    commandTimeoutMs: 1000,
    now: () => new Date(),
    notifier: { refresh: async () => offline() },
    // A PUK release pending on the journey is the bot's: nothing is unsealed here.
    reachesCompanions: false,
  });
  const now = (): Date => new Date();
  const definitions = {
    unlock: unlockDefinition({ keys, rules: DEFAULT_UNLOCK_RULES, now }),
    registration: registrationDefinition({ keys, approvedDomains: [], now }),
  };
  const engine = new JourneyEngine({ storage, runner, logger, now, definitions });
  const result = await resetSelfService(engine, person.id, 'admin', note);
  return { person, result };
}

/** What {@link adminRevokeDevice} did. */
export interface AdminRevocation {
  /** The person whose devices were named (with `--person`), else the device's person when stored. */
  personId: string;
  outcome: Extract<RevocationOutcome, { kind: 'done' }>;
}

/**
 * Revoke a companion's device credential from the admin command (actor `admin`): the same
 * operation as the companion's own unpair ({@link revokeDevices}). The running bot closes the
 * device's open link at its next revocation check (a few seconds; this is another process).
 *
 * @param storage - the store
 * @param target - `{ device: <device id> }` or `{ person: <person id | Teams user id | card id | registered email> }`
 * @param now - clock
 * @returns the person and the devices revoked now / already revoked
 * @throws AppError `INPUT.USAGE` for a device id that is not a UUID; `INPUT.DEVICE_NOT_FOUND` when no device
 *   has that id or the person has none; `INPUT.PERSON_NOT_FOUND` when no person matches
 */
export async function adminRevokeDevice(storage: Storage, target: { device: string } | { person: string }, now: () => Date = () => new Date()): Promise<AdminRevocation> {
  let personId: string | null = null;
  let outcome: RevocationOutcome;
  if ('device' in target) {
    const deviceId = target.device.trim().toLowerCase();
    if (!z.string().uuid().safeParse(deviceId).success) throw new AppError('INPUT.USAGE', '--device must be a device id (a UUID, as in the audit log or the companion\'s credential file)');
    outcome = await revokeDevices({ storage, now }, { kind: 'device', deviceId }, 'admin', 'admin');
    if (outcome.kind === 'not_found') throw new AppError('INPUT.DEVICE_NOT_FOUND', 'no device has that id');
  } else {
    const person = await findPerson(storage, target.person);
    if (!person) throw new AppError('INPUT.PERSON_NOT_FOUND', 'no person matches --person (give a person id, Teams user id, card id, or registered email)');
    personId = person.id;
    outcome = await revokeDevices({ storage, now }, { kind: 'person', personId: person.id }, 'admin', 'admin');
    if (outcome.kind === 'not_found') throw new AppError('INPUT.DEVICE_NOT_FOUND', 'no device is paired for that person');
  }
  const first = outcome.revoked[0] ?? outcome.alreadyRevoked[0];
  return { personId: personId ?? first?.personId ?? '', outcome };
}

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function run(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const config = loadConfig(process.env);
  const logger = createLogger({ name: 'admin', level: 'warn', destination: process.stderr as never });
  const keys = deriveKeys(parseMasterKey(config.masterKey, 'SMARTCARD_MASTER_KEY'));
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const storage = await openStorage(config.storage, logger);
  try {
    switch (command) {
      case 'add-person': {
        const file = arg(args, '--file');
        if (!file) throw new AppError('INPUT.USAGE', 'add-person needs --file PATH (or --file - for standard input)');
        const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          throw new AppError('INPUT.PERSON_FILE', 'person file is not valid JSON');
        }
        const r = await addPerson(storage, keys, json);
        process.stdout.write(`${r.status === 'created' ? 'added' : 'already registered'}: person ${r.personId}\n`);
        return 0;
      }
      case 'seed-demo': {
        const teamsUserId = arg(args, '--teams-user-id') ?? 'user-id-0';
        const cardFile = path.join(config.dataDir, 'demo-card.env');
        let cardEnv: string;
        let cardId: string;
        let puk: string;
        try {
          cardEnv = readFileSync(cardFile, 'utf8');
          cardId = /COMPANION_VIRTUAL_CARD_ID=([0-9a-f]{32})/.exec(cardEnv)?.[1] ?? '';
          puk = /COMPANION_VIRTUAL_CARD_PUK=([0-9]{8})/.exec(cardEnv)?.[1] ?? '';
          if (!cardId || !puk) throw new Error('incomplete');
        } catch {
          cardId = randomBytes(16).toString('hex');
          puk = generatePuk();
          const pin = String(100000 + (randomBytes(3).readUIntBE(0, 3) % 900000));
          cardEnv = `COMPANION_READER=virtual\nCOMPANION_VIRTUAL_CARD_ID=${cardId}\nCOMPANION_VIRTUAL_CARD_PIN=${pin}\nCOMPANION_VIRTUAL_CARD_PUK=${puk}\nCOMPANION_VIRTUAL_CARD_BLOCKED=true\n`;
          writeFileSync(cardFile, cardEnv, { mode: 0o600 });
          chmodSync(cardFile, 0o600);
        }
        const r = await addPerson(storage, keys, { teamsUserId, displayName: 'Alex Wilber', email: 'alex.wilber@nhs.net', cardId, puk, answers: DEMO_ANSWERS });
        if (r.status === 'exists') {
          // The demo's virtual card starts afresh (locked, original PUK) every run: match it.
          for (let i = 0; i < 5; i++) {
            const card = await storage.cards.get(cardId);
            if (!card) break;
            const saved = await storage.cards.save({ ...card, puk: sealPuk(keys.sealKey, puk, cardId), pendingPuk: null, updatedAt: new Date().toISOString(), version: card.version + 1 }, card.version);
            if (saved === 'saved') break;
          }
        }
        process.stdout.write(`${r.status === 'created' ? 'Seeded' : 'Already seeded'} demo person Alex Wilber (Teams user ${teamsUserId}, alex.wilber@nhs.net), card ${cardId}.\n`);
        process.stdout.write(`Virtual card settings for the companion: ${cardFile}\n`);
        process.stdout.write('Demo security answers (any 3 are asked):\n');
        for (const a of DEMO_ANSWERS) process.stdout.write(`  ${QUESTION_BANK.find((q) => q.id === a.questionId)?.text}  ->  ${a.answer}\n`);
        return 0;
      }
      case 'import-puks': {
        const file = arg(args, '--file');
        if (!file) throw new AppError('INPUT.USAGE', 'import-puks needs --file PATH (CSV with header card_id,puk) or --file - for standard input');
        const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
        const r = await importPuks(storage, keys, text, args.includes('--replace'));
        process.stdout.write(`PUKs enrolled: ${r.enrolled}, replaced: ${r.replaced}, already enrolled (skipped): ${r.skipped}, refused: ${r.refused.length}\n`);
        for (const line of r.refused) process.stdout.write(`  refused ${line}\n`);
        return r.refused.length > 0 ? 1 : 0;
      }
      case 'cases':
      case 'list-cases': {
        process.stdout.write(formatCases(await listCases(storage)));
        return 0;
      }
      case 'report': {
        const r = reportRangeFromDates(arg(args, '--from'), arg(args, '--to'));
        if (!r.ok) throw new AppError('INPUT.USAGE', `report: ${r.message} (report --from YYYY-MM-DD --to YYYY-MM-DD [--csv]; UTC days, both included)`);
        const report = await loadUsageReport(storage, r.range, { teams: config.raDesk });
        process.stdout.write(args.includes('--csv') ? usageReportCsv(report) : usageReportText(report));
        return 0;
      }
      case 'reset-self-service': {
        const ref = arg(args, '--person');
        if (!ref) throw new AppError('INPUT.USAGE', 'reset-self-service needs --person <person id | email | Teams user id | card id>');
        const { person, result } = await adminResetSelfService(storage, keys, logger, ref, arg(args, '--note') ?? null);
        process.stdout.write(
          `Self-service reset for person ${person.id}: ${result.clearedCaseRef ? `lock ${result.clearedCaseRef} cleared` : person.selfServiceLock ? `lock ${person.selfServiceLock.caseRef} cleared` : 'no lock was set'}, ${result.attemptsBefore} answer attempt(s) forgotten.\n`,
        );
        return 0;
      }
      case 'revoke-device': {
        const device = arg(args, '--device');
        const person = arg(args, '--person');
        if ((device === undefined) === (person === undefined)) throw new AppError('INPUT.USAGE', 'revoke-device needs exactly one of --device <device id> or --person <person id | email | Teams user id | card id>');
        const r = await adminRevokeDevice(storage, device !== undefined ? { device } : { person: person! });
        for (const d of r.outcome.revoked) process.stdout.write(`revoked: device ${d.id} (${d.workstation}) of person ${d.personId}\n`);
        for (const d of r.outcome.alreadyRevoked) process.stdout.write(`already revoked: device ${d.id} (${d.workstation}) of person ${d.personId}\n`);
        if (r.outcome.revoked.length > 0) process.stdout.write('The bot closes an open link of a revoked device within a few seconds; that companion must pair again.\n');
        return 0;
      }
      default:
        process.stderr.write('usage: admin add-person --file PATH|- | import-puks --file PATH|- [--replace] | seed-demo [--teams-user-id ID] | cases | report --from YYYY-MM-DD --to YYYY-MM-DD [--csv] | reset-self-service --person REF [--note TEXT] | revoke-device --device ID | --person REF\n');
        return 2;
    }
  } finally {
    await storage.close();
  }
}

const isMain = process.argv[1] && path.resolve(process.argv[1]).replace(/\.ts$/, '') === path.resolve(new URL(import.meta.url).pathname).replace(/\.ts$/, '');
if (isMain) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof AppError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
