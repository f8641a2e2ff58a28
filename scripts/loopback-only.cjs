/**
 * Preload (`node --require ./scripts/loopback-only.cjs ...`) that makes every TCP server the process
 * opens listen on 127.0.0.1 when it names no address. Used for the Microsoft 365 Agents Playground,
 * whose CLI (0.2.28: `-p/--port` only) has no option for the listening address and otherwise listens
 * on every interface. A server that names an address keeps it.
 */
'use strict';
const net = require('node:net');

const LOOPBACK = '127.0.0.1';
const original = net.Server.prototype.listen;

net.Server.prototype.listen = function listen(...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen(options[, cb]): a pipe path or a named host is kept.
    if (first.path === undefined && first.host === undefined && first.fd === undefined && first._handle === undefined && first.handle === undefined) {
      args[0] = { ...first, host: LOOPBACK };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first)) || first === undefined || typeof first === 'function') {
    // listen([port][, host][, backlog][, cb]): add the host when the second argument is not one.
    if (typeof first === 'function' || first === undefined) args.splice(0, first === undefined ? 1 : 0, 0, LOOPBACK);
    else if (typeof args[1] !== 'string') args.splice(1, 0, LOOPBACK);
  }
  return original.apply(this, args);
};
