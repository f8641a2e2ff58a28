/**
 * A small HTTP server on 127.0.0.1 and a free port, for local stand-ins of
 * outside services (a Bot Framework connector). Subclasses answer requests in
 * {@link LoopbackHttpServer.handle}.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export abstract class LoopbackHttpServer {
  private server: Server | null = null;
  /** `http://127.0.0.1:<port>/` once started, else ''. */
  url = '';

  /** Answer one request (errors are the subclass's to handle). */
  protected abstract handle(req: IncomingMessage, res: ServerResponse): void | Promise<void>;

  /** Listen on a free loopback port; returns the base URL. */
  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    return this.url;
  }

  /** Close the server and every open connection. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
