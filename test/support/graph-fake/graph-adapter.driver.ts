/**
 * Child-process host for the Graph mail adapter in contract tests (run with `node --import tsx`).
 *
 * The adapter runs here unchanged, in a process started with `NODE_EXTRA_CA_CERTS` pointing at the test CA, as
 * a bot would run against a private CA: Node reads that variable only at process start, so the test runner's own
 * process cannot trust the fake without it. Its pino log goes to stdout (level trace) for the parent to check.
 *
 * IPC requests: `{ id, op: 'create', env, options }` -> `{ handle }`; `{ id, op: 'verify' | 'send', handle, message? }`;
 * `{ id, op: 'sendAll', handle, messages }` -> settled results. The Graph directory adapter too:
 * `{ id, op: 'createDirectory', env }` (DIRECTORY=graph) -> `{ handle }`; `{ id, op: 'lookup', handle, aadObjectId }`. Answers: `{ id, ok: true, value }` or
 * `{ id, ok: false, error: { name, code, message, meta } }`.
 */
import { createLogger } from '../../../common/logger';
import { AppError } from '../../../common/app-error';
import { loadGraphMailConfig } from '../../../bot/mail/graph/graph-mail.config';
import { createGraphMailAdapter, type GraphMailAdapter } from '../../../bot/mail/graph/graph-mail.adapter';
import type { MailMessage } from '../../../bot/mail/mail.port';
import { loadDirectoryConfig } from '../../../bot/directory/directory.config';
import { createGraphDirectory } from '../../../bot/directory/graph-directory.adapter';
import type { DirectoryPort } from '../../../bot/directory/directory.port';

export type DriverRequest =
  | { id: number; op: 'create'; env: Record<string, string>; options?: { backoffBaseMs?: number } }
  | { id: number; op: 'verify'; handle: string }
  | { id: number; op: 'send'; handle: string; message: MailMessage }
  | { id: number; op: 'sendAll'; handle: string; messages: MailMessage[] }
  | { id: number; op: 'createDirectory'; env: Record<string, string> }
  | { id: number; op: 'lookup'; handle: string; aadObjectId: string };

export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  meta?: Record<string, unknown>;
}

export type Settled = { ok: true; value: unknown } | { ok: false; error: SerializedError };

function serialize(err: unknown): SerializedError {
  if (err instanceof AppError) return { name: err.name, code: err.code, message: err.message, meta: { ...err.meta } };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'unknown', message: String(err) };
}

async function settle(work: () => Promise<unknown>): Promise<Settled> {
  try {
    const value = await work();
    return { ok: true, value: value === undefined ? null : JSON.parse(JSON.stringify(value)) };
  } catch (err) {
    return { ok: false, error: serialize(err) };
  }
}

if (typeof process.send === 'function') {
  const logger = createLogger({ name: 'bot', level: 'trace' });
  const adapters = new Map<string, GraphMailAdapter>();
  const directories = new Map<string, DirectoryPort>();
  let next = 0;
  const adapter = (handle: string) => {
    const a = adapters.get(handle);
    if (!a) throw new Error(`no adapter ${handle}`);
    return a;
  };
  process.on('message', (raw) => {
    const req = raw as DriverRequest;
    const run = async (): Promise<Settled> => {
      switch (req.op) {
        case 'create':
          return settle(async () => {
            const handle = `a${++next}`;
            adapters.set(handle, createGraphMailAdapter(loadGraphMailConfig(req.env), logger, req.options ?? {}));
            return { handle };
          });
        case 'verify':
          return settle(() => adapter(req.handle).verify());
        case 'send':
          return settle(() => adapter(req.handle).send(req.message));
        case 'sendAll':
          return settle(async () => Promise.all(req.messages.map((m) => settle(() => adapter(req.handle).send(m)))));
        case 'createDirectory':
          return settle(async () => {
            const config = loadDirectoryConfig(req.env);
            if (config.kind !== 'graph') throw new Error(`DIRECTORY=${config.kind}: the driver hosts only the Graph directory`);
            const handle = `d${++next}`;
            directories.set(handle, createGraphDirectory(config, logger));
            return { handle };
          });
        case 'lookup':
          return settle(() => {
            const directory = directories.get(req.handle);
            if (!directory) throw new Error(`no directory ${req.handle}`);
            return directory.lookup(req.aadObjectId);
          });
      }
    };
    void run().then((result) => process.send!({ id: req.id, ...result }));
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ id: 0, ok: true, value: 'ready' });
}
