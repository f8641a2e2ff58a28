/**
 * A TLS-terminating reverse proxy on loopback, standing in for the nginx or Caddy a Trust puts in front of the
 * bot (docs/deploy.md, "Running behind HTTPS"): HTTPS in, plain HTTP to the bot on loopback, and WebSocket
 * upgrades (`/companion/link`) passed through as a byte stream after the upgrade request. It adds
 * `X-Forwarded-For` / `X-Forwarded-Proto` as such proxies do.
 *
 * Test-only: it listens on a loopback address and forwards to a loopback URL.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface TlsProxy {
  /** `https://<host>:<port>` (no trailing slash). */
  url: string;
  /** TLS connections accepted so far (handshake done). */
  connections(): number;
  stop(): Promise<void>;
}

/**
 * Start the proxy.
 *
 * @param options.cert - server certificate chain (PEM)
 * @param options.key - its private key (PEM)
 * @param options.target - the bot's base URL, `http://127.0.0.1:<port>`
 * @param options.host - loopback address to listen on; default `127.0.0.1`
 * @returns the running proxy
 */
export async function startTlsProxy(options: { cert: string; key: string; target: string; host?: string }): Promise<TlsProxy> {
  const target = new URL(options.target);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) throw new Error('the test proxy forwards to loopback only');
  const host = options.host ?? '127.0.0.1';
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server: Server = createHttpsServer({ cert: options.cert, key: options.key }, (req, res) => {
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: forwarded(req) },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"error":"bad gateway"}');
    });
    req.pipe(upstream);
  });
  server.on('secureConnection', (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const up = connect(Number(target.port), target.hostname, () => {
      const headers = forwarded(req);
      const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`, ...Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : v === undefined ? [] : [`${k}: ${v}`]))];
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://${host}:${port}`,
    connections: () => accepted,
    stop: async () => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The request's headers plus the forwarding headers a reverse proxy adds. */
function forwarded(req: IncomingMessage): Record<string, string | string[] | undefined> {
  return { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '', 'x-forwarded-proto': 'https' };
}
