/**
 * The shell shared by every journey (STYLE.md 2; DESIGN.md "transactional outbox").
 *
 * `apply` reads the journey record, lets the caller run its pure step on it, and
 * stores the new state together with the step's effects in one
 * compare-and-set write; a write that loses a race is retried from a fresh
 * read, so a double click counts once. Only after the write are the effects
 * carried out (by the {@link EffectRunner}), each idempotently on its id, and
 * removed. Events that effects produce (e.g. "code mailed") are typed per
 * journey kind ({@link FollowUpEvents}) and stepped by the engine itself with
 * that journey's definition: one way through, no callbacks into services.
 *
 * A journey plugs in as a {@link JourneyDefinition}: its initial value, how its
 * stored state is decoded (a zod schema; a malformed state is an error naming
 * the field) and encoded, and its pure step.
 */
import { randomUUID } from 'node:crypto';
import { AppError } from '../../common/app-error';
import type { Logger } from '../../common/logger';
import type { JourneyKind, JourneyRecord, Storage, StoredEffect } from '../../storage/storage.port';
import type { EffectRunner, FollowUp } from './effect-runner';
import { journeyKey } from './journey.key';
import { EFFECT_NOT_HERE, type Effect } from './journey.effects';
import type { StepResult, UnlockEvent, UnlockJourney } from './unlock/unlock.journey';
import type { RegistrationEvent, RegistrationJourney, RegistrationStepResult } from './registration/registration.journey';

/** Attempts after which an effect is abandoned (logged and audited). */
export const MAX_EFFECT_ATTEMPTS = 10;

export { EFFECT_NOT_HERE };

/** What a journey's pure step returns (the part the engine needs). */
export interface JourneyStepResult<J> {
  journey: J;
  effects: Effect[];
  /** False when the event did not apply: nothing is written. */
  changed: boolean;
}

/**
 * How one kind of journey plugs into the engine.
 *
 * @typeParam J - the journey value the pure step works on
 * @typeParam E - the events it accepts
 * @typeParam R - its step result
 */
export interface JourneyDefinition<K extends JourneyKind, J, E, R extends JourneyStepResult<J>> {
  kind: K;
  /** The value of a person's journey before anything was stored. */
  initial(personId: string, runId: string): J;
  /** Decode a stored record. @throws AppError `JOURNEY.STATE_INVALID` naming the malformed field */
  decode(rec: JourneyRecord): J;
  /** What to store for a journey value. */
  encode(journey: J): { runId: string; state: unknown; counters: Record<string, number> };
  /** The pure step, with fresh values (time, ids, a code) drawn by the definition. */
  step(journey: J, event: E): R;
}

/** The definitions the engine steps follow-up events with, one per journey kind. */
export interface JourneyDefinitions {
  unlock: JourneyDefinition<'unlock', UnlockJourney, UnlockEvent, StepResult>;
  registration: JourneyDefinition<'registration', RegistrationJourney, RegistrationEvent, RegistrationStepResult>;
}

/** What a step hands back to the engine to store. */
export interface StepOutcome {
  runId: string;
  state: unknown;
  counters: Record<string, number>;
  effects: Effect[];
}

export { journeyKey };

/** How many carried-out effect ids the engine remembers (so a failed removal repeats nothing). */
export const CARRIED_OUT_MEMORY = 10_000;

/**
 * True when a stored effect's payload has the shape every effect shares (an object with
 * a string `type`); the runner checks the rest per type.
 */
function isEffectPayload(payload: unknown): payload is Effect {
  return typeof payload === 'object' && payload !== null && typeof (payload as { type?: unknown }).type === 'string';
}

/** One drain pass over a journey's outbox: the events its effects produced, stepped once. */
interface DrainPass {
  followUps: FollowUp[];
  /** Set by the first caller to step `followUps`; the others await it. */
  stepped: Promise<void> | null;
}

/** A journey's drain in this process: the running pass, and at most one queued behind it. */
interface DrainSlot {
  current: Promise<DrainPass>;
  queued: Promise<DrainPass> | null;
}

export class JourneyEngine {
  /** The effect drain of each journey in this process: the running pass and the one queued behind it. */
  private readonly draining = new Map<string, DrainSlot>();
  /**
   * Effects this process has carried out, by id, with the event each produced (most recent
   * {@link CARRIED_OUT_MEMORY}): one found still stored (its removal failed) is removed, not repeated.
   */
  private readonly carriedOut = new Map<string, FollowUp | null>();
  /** Steps and drains running now (a graceful shutdown waits for them: {@link idle}). */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Keys of stored journeys found unreadable (logged once each). */
  private readonly unreadableKeys = new Set<string>();
  /** The journeys this engine steps (services step with the same definitions). */
  readonly definitions: JourneyDefinitions;

  constructor(
    private readonly deps: {
      storage: Storage;
      runner: EffectRunner;
      logger: Logger;
      now: () => Date;
      definitions: JourneyDefinitions;
    },
  ) {
    this.definitions = deps.definitions;
  }

  /**
   * Load the journey, build the event from it as read, step it with its
   * definition, and store the new state with the step's effects in one
   * compare-and-set write (retried from a fresh read on a lost race); then run
   * the effects.
   *
   * @param def - the journey's definition
   * @param personId - whose journey
   * @param makeEvent - the event for the journey as freshly read (may be called again after a lost race); null = nothing to do
   * @param options.deferEffects - see {@link apply}
   * @returns the record after the step, the journey decoded from it, and the step's result (null when no event applied)
   * @throws AppError `JOURNEY.BUSY` (lost races), `JOURNEY.STATE_INVALID` (malformed stored state)
   */
  async run<K extends JourneyKind, J, E, R extends JourneyStepResult<J>>(
    def: JourneyDefinition<K, J, E, R>,
    personId: string,
    makeEvent: (journey: J, rec: JourneyRecord) => Promise<E | null>,
    options: { deferEffects?: boolean } = {},
  ): Promise<{ record: JourneyRecord; journey: J; result: R | null }> {
    let result: R | null = null;
    const initial = (): { state: unknown; counters: Record<string, number> } => def.encode(def.initial(personId, ''));
    const { record } = await this.apply(
      personId,
      def.kind,
      initial,
      async (rec) => {
        result = null;
        const journey = def.decode(rec);
        const event = await makeEvent(journey, rec);
        if (event === null) return null;
        const r = def.step(journey, event);
        result = r;
        if (!r.changed) return null;
        return { ...def.encode(r.journey), effects: r.effects };
      },
      options,
    );
    return { record, journey: def.decode(record), result };
  }

  /** Step a follow-up event (produced by an effect) with its journey's definition. */
  private async followUp(personId: string, f: FollowUp): Promise<void> {
    if (f.kind === 'unlock') {
      const event = f.event;
      await this.run(this.definitions.unlock, personId, async () => event);
    } else if (f.kind === 'registration') {
      const event = f.event;
      await this.run(this.definitions.registration, personId, async () => event);
    }
  }

  /** The stored record, or a fresh one (version 0, not stored) built from `initial`. */
  async load(personId: string, kind: JourneyKind, initial: () => { state: unknown; counters: Record<string, number> }): Promise<JourneyRecord> {
    const rec = await this.deps.storage.journeys.get(journeyKey(personId, kind));
    if (rec) return rec;
    const at = this.deps.now().toISOString();
    const fresh = initial();
    return { key: journeyKey(personId, kind), personId, kind, runId: randomUUID(), state: fresh.state, counters: fresh.counters, pendingEffects: [], ui: { activityId: null }, createdAt: at, updatedAt: at, version: 0 };
  }

  /**
   * Run one step with compare-and-set, then carry out its effects.
   *
   * @param step - runs the pure step on the freshly read record; returns null when nothing changes.
   *   It may be called again (after a lost race), so it must not have side effects.
   * @param options.deferEffects - carry the effects out just after the caller's current turn
   *   (so a request's answer goes out before the commands its step sends), not before returning
   * @returns the record after the step (re-read after effects ran) and whether it changed
   * @throws AppError `JOURNEY.BUSY` when 8 writes in a row lost their race
   */
  async apply(
    personId: string,
    kind: JourneyKind,
    initial: () => { state: unknown; counters: Record<string, number> },
    step: (rec: JourneyRecord) => Promise<StepOutcome | null>,
    options: { deferEffects?: boolean } = {},
  ): Promise<{ record: JourneyRecord; changed: boolean }> {
    return this.track(this.applyStep(personId, kind, initial, step, options));
  }

  private async applyStep(
    personId: string,
    kind: JourneyKind,
    initial: () => { state: unknown; counters: Record<string, number> },
    step: (rec: JourneyRecord) => Promise<StepOutcome | null>,
    options: { deferEffects?: boolean },
  ): Promise<{ record: JourneyRecord; changed: boolean }> {
    for (let attempt = 0; attempt < 8; attempt++) {
      const rec = await this.load(personId, kind, initial);
      const outcome = await step(rec);
      if (!outcome) return { record: rec, changed: false };
      const at = this.deps.now().toISOString();
      const next: JourneyRecord = {
        ...rec,
        runId: outcome.runId,
        state: outcome.state,
        counters: { ...rec.counters, ...outcome.counters },
        pendingEffects: [...rec.pendingEffects, ...outcome.effects.map((e): StoredEffect => ({ id: e.id, type: e.type, payload: e, attempts: 0 }))],
        ui: outcome.runId !== rec.runId ? { activityId: null } : rec.ui,
        updatedAt: at,
        version: rec.version + 1,
      };
      const saved =
        rec.version === 0
          ? (await this.deps.storage.journeys.insert(next)).status === 'created'
            ? 'saved'
            : 'conflict'
          : await this.deps.storage.journeys.save(next, rec.version);
      if (saved === 'conflict') {
        // Lost a race: back off a little (jittered) before reading again.
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 5 * (attempt + 1))));
        continue;
      }
      {
        if (options.deferEffects) {
          // The caller answers first (e.g. a companion request), then the effects run:
          // the companion hears "ok" before any command the step sends it.
          // Tracked from now, so a shutdown that begins before it runs still waits for it.
          void this.track(
            new Promise<void>((resolve) =>
              setImmediate(() => resolve(this.drain(personId, kind).catch((err: unknown) => this.deps.logger.warn({ err }, 'deferred effects failed')))),
            ),
          );
          return { record: next, changed: true };
        }
        await this.drain(personId, kind);
        return { record: (await this.deps.storage.journeys.get(next.key)) ?? next, changed: true };
      }
    }
    throw new AppError('JOURNEY.BUSY', 'the journey kept changing under us; try again', { meta: { personId, kind } });
  }

  /** Remember which Teams activity shows this run's card (for in-place updates). */
  async setCardActivity(personId: string, kind: JourneyKind, runId: string, activityId: string): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const rec = await this.deps.storage.journeys.get(journeyKey(personId, kind));
      if (!rec || rec.runId !== runId || rec.ui.activityId === activityId) return;
      if ((await this.deps.storage.journeys.save({ ...rec, ui: { activityId }, version: rec.version + 1 }, rec.version)) === 'saved') return;
    }
  }

  /**
   * Carry out a journey's pending effects in order, then step the events they
   * produced with the journey's definition.
   *
   * One pass per journey at a time in this process, and at most one more queued
   * behind it: every caller that arrives while a pass runs shares that one queued
   * pass (it starts after the running one and reads the record afresh, so it sees
   * what those callers stored). The events a pass produced are stepped once, by
   * whichever of its callers gets there first; the others wait for that. Other
   * processes are safe because every effect is idempotent on its id.
   */
  async drain(personId: string, kind: JourneyKind): Promise<void> {
    return this.track(this.drainTracked(personId, kind));
  }

  /**
   * Resolve once no step and no effect drain runs in this engine: what a graceful shutdown waits for
   * (bot/lifecycle.ts). Work that starts while it waits is waited for too.
   */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Count `work` as in flight until it settles. */
  private track<T>(work: Promise<T>): Promise<T> {
    this.inFlight.add(work);
    const done = (): void => void this.inFlight.delete(work);
    work.then(done, done);
    return work;
  }

  private async drainTracked(personId: string, kind: JourneyKind): Promise<void> {
    const pass = await this.pass(journeyKey(personId, kind));
    pass.stepped ??= (async () => {
      for (const f of pass.followUps) await this.followUp(personId, f);
    })();
    await pass.stepped;
  }

  /** The pass a drain of `key` waits for: a new one when none runs, else the one queued behind the running one (shared). */
  private pass(key: string): Promise<DrainPass> {
    const slot = this.draining.get(key);
    if (!slot) {
      const fresh: DrainSlot = { current: Promise.resolve({ followUps: [], stepped: null }), queued: null };
      this.draining.set(key, fresh);
      return this.startPass(key, fresh);
    }
    slot.queued ??= slot.current.catch(() => undefined).then(() => {
      slot.queued = null;
      return this.startPass(key, slot);
    });
    return slot.queued;
  }

  private startPass(key: string, slot: DrainSlot): Promise<DrainPass> {
    const current = this.drainOnce(key).then((followUps): DrainPass => ({ followUps, stepped: null }));
    slot.current = current;
    const done = (): void => {
      // Last pass of this slot: forget it (a queued pass keeps the slot and becomes current).
      if (slot.current === current && slot.queued === null && this.draining.get(key) === slot) this.draining.delete(key);
    };
    current.then(done, done);
    return current;
  }

  private async drainOnce(key: string): Promise<FollowUp[]> {
    const followUps: FollowUp[] = [];
    const rec = await this.deps.storage.journeys.get(key);
    if (!rec || rec.pendingEffects.length === 0) return followUps;
    const abandoned = new Set<string>();
    for (const [i, stored] of rec.pendingEffects.entries()) {
      if (!isEffectPayload(stored.payload)) {
        // Cannot be carried out as stored: leave it (and, keeping order, the ones after it) for repair.
        this.unreadable(key, `pendingEffects.${i}.payload`, 'JOURNEY.EFFECT_INVALID');
        return followUps;
      }
      const effect = stored.payload;
      if (effect.type === 'companion.command' && effect.onlyAfter && abandoned.has(effect.onlyAfter)) {
        // What it depended on failed for good (e.g. the code email): drop it unsent.
        await this.deps.storage.journeys.removeEffects(key, [stored.id]);
        continue;
      }
      try {
        // Carried out already by this process (its removal failed): remove it, repeat nothing.
        const known = this.carriedOut.has(stored.id);
        const next = known ? (this.carriedOut.get(stored.id) ?? null) : await this.deps.runner.carryOut(effect);
        if (!known) this.rememberCarriedOut(stored.id, next);
        await this.deps.storage.journeys.removeEffects(key, [stored.id]);
        if (next) followUps.push(next);
      } catch (err) {
        const code = err instanceof AppError ? err.code : 'UNEXPECTED';
        // Not for this process (the admin CLI): leave it to the bot, as it was.
        if (code === EFFECT_NOT_HERE) continue;
        const attempts = stored.attempts + 1;
        this.deps.logger.warn({ effect: effect.type, effectId: stored.id, attempts, code, ...(err instanceof AppError ? {} : { err }) }, 'effect failed');
        const failure = this.deps.runner.onFinalFailure(effect);
        // A mail that finally failed is final: the mail adapter already retried what can be retried.
        const final = attempts >= MAX_EFFECT_ATTEMPTS || failure !== null;
        if (final) {
          abandoned.add(stored.id);
          await this.deps.storage.journeys.removeEffects(key, [stored.id]);
          const requestId = err instanceof AppError ? err.meta['requestId'] : undefined;
          await this.deps.storage.audit.append({
            id: randomUUID(),
            at: this.deps.now().toISOString(),
            actor: 'system',
            action: 'effect.abandoned',
            personId: rec.personId,
            details: { effect: effect.type, effectId: stored.id, code, requestId: typeof requestId === 'string' ? requestId : null },
          });
          if (failure) followUps.push(failure);
          else this.deps.logger.error({ effect: effect.type, effectId: stored.id }, 'effect abandoned after repeated failures');
        } else {
          await this.deps.storage.journeys.countEffectAttempt(key, [stored.id]);
          // Keep order for effects that depend on earlier ones; UI and companion notices may go on.
          if (effect.type !== 'teams.refresh' && effect.type !== 'companion.command') return followUps;
        }
      }
    }
    return followUps;
  }

  private rememberCarriedOut(effectId: string, next: FollowUp | null): void {
    this.carriedOut.set(effectId, next);
    if (this.carriedOut.size > CARRIED_OUT_MEMORY) {
      const oldest = this.carriedOut.keys().next();
      if (!oldest.done) this.carriedOut.delete(oldest.value);
    }
  }

  /**
   * Retry effects left behind by a crash or an outage (called on a timer).
   * A journey whose record or pending effect cannot be read is skipped (logged
   * once per key, naming the field) and the sweep carries on with the others;
   * so does a journey whose drain fails.
   */
  async sweep(): Promise<void> {
    const recs = await this.deps.storage.journeys.listWithPendingEffects(50, {
      onUnreadable: (key, err) => this.unreadable(key, typeof err.meta['fields'] === 'string' ? err.meta['fields'] : 'record', err.code),
    });
    for (const r of recs) {
      try {
        await this.drain(r.personId, r.kind);
      } catch (err) {
        const code = err instanceof AppError ? err.code : 'UNEXPECTED';
        this.deps.logger.warn({ key: r.key, code, ...(err instanceof AppError ? {} : { err }) }, 'effect sweep: drain failed for one journey; carrying on');
      }
    }
  }

  /** Log, once per key in this process, a stored journey the engine cannot read (it is skipped, left as it is). */
  private unreadable(key: string, field: string, code: string): void {
    if (this.unreadableKeys.has(key)) return;
    this.unreadableKeys.add(key);
    this.deps.logger.error({ key, field, code }, 'stored journey cannot be read; its effects are skipped until it is repaired');
  }
}
