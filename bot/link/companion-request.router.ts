/**
 * Routing of companion requests by their protocol `kind` (protocol/companion-link.protocol.ts
 * `RequestSchema`): one handler per kind, checked by the compiler to cover every
 * kind with the request narrowed to it. No prefix matching.
 *
 * `device.unpair` is not routed: the link answers it itself (it revokes the device that
 * sent it, answers, then closes that link; `device-revocation.ts`).
 */
import type { Request, Response } from '../../protocol/companion-link.protocol';
import type { Device } from '../../storage/storage.port';

/** The requests handed to the services (every kind but the link's own `device.unpair`). */
export type RoutedRequest = Exclude<Request, { kind: 'device.unpair' }>;

/** The request kinds handed to the services. */
export type RoutedRequestKind = RoutedRequest['kind'];

/** The request of one routed kind. */
export type RequestOf<K extends RoutedRequestKind> = Extract<RoutedRequest, { kind: K }>;

/** Which link a request came on. */
export interface LinkContext {
  /** Id of the link session (the `session` of its `welcome`), new for every accepted connection. */
  linkSession: string;
}

/** One handler per routed request kind. */
export type RequestHandlers = { [K in RoutedRequestKind]: (device: Device, request: RequestOf<K>, link: LinkContext) => Promise<Response> };

/**
 * Hand a request to the handler for its kind.
 *
 * @param handlers - the table (built once in the composition root)
 * @param device - the paired device that sent it (credential checked on this message)
 * @param request - a request parsed by the protocol schema
 * @param link - the link session it came on
 * @returns the handler's response
 */
export function routeRequest<K extends RoutedRequestKind>(handlers: RequestHandlers, device: Device, request: RequestOf<K>, link: LinkContext): Promise<Response> {
  const handler: (device: Device, request: RequestOf<K>, link: LinkContext) => Promise<Response> = handlers[request.kind];
  return handler(device, request, link);
}
