import type { z } from 'zod';

/**
 * Check a JSON request body against a zod schema.
 *
 * @param schema - the body's schema
 * @param body - the parsed JSON body (restify bodyParser); `undefined` is read as `{}`
 * @returns the value, or a message naming the first bad field (`field.path: reason`), never the value sent
 */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): { ok: true; value: T } | { ok: false; message: string } {
  const r = schema.safeParse(body ?? {});
  if (r.success) return { ok: true, value: r.data };
  const i = r.error.issues[0];
  return { ok: false, message: `${i && i.path.length ? i.path.join('.') : 'body'}: ${i?.message ?? 'invalid'}` };
}
