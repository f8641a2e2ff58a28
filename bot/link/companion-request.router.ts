/**
 * Routing of companion requests by their protocol `kind` (protocol/companion-link.protocol.ts
 * `RequestSchema`): one handler per kind, checked by the compiler to cover every
 * kind with the request narrowed to it. No prefix matching.
 */
import type { Request, Response } from '../../protocol/companion-link.protocol';
import type { Device } from '../../storage/storage.port';

/** A request kind the protocol defines. */
export type RequestKind = Request['kind'];

/** The request of one kind. */
export type RequestOf<K extends RequestKind> = Extract<Request, { kind: K }>;

/** One handler per request kind. */
export type RequestHandlers = { [K in RequestKind]: (device: Device, request: RequestOf<K>) => Promise<Response> };

/**
 * Hand a request to the handler for its kind.
 *
 * @param handlers - the table (built once in the composition root)
 * @param device - the paired device that sent it (credential already checked)
 * @param request - a request parsed by the protocol schema
 * @returns the handler's response
 */
export function routeRequest<K extends RequestKind>(handlers: RequestHandlers, device: Device, request: RequestOf<K>): Promise<Response> {
  const handler: (device: Device, request: RequestOf<K>) => Promise<Response> = handlers[request.kind];
  return handler(device, request);
}
