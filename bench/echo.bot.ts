/**
 * The baseline for journey turns: a minimal botbuilder bot that echoes each
 * message, served by the bot's own HTTP setup (`createHttpServer`: restify,
 * body parser, `POST /api/messages` -> channel authentication -> the turn) behind a
 * `ChannelAdapter` built as `bot/main.ts` builds it with authentication off.
 */
import { ActivityHandler, ConfigurationBotFrameworkAuthentication } from 'botbuilder';
import { ChannelAdapter } from '../bot/http/channel-auth';
import type { Server } from 'restify';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../common/logger';
import type { BotApp } from '../bot/main';
import { createHttpServer } from '../bot/http/http.server';
import type { SmartcardBot } from '../bot/teams/teams.bot';

/** Answers every message with `echo: <text>`. */
export class EchoBot extends ActivityHandler {
  constructor() {
    super();
    this.onMessage(async (context, next) => {
      await context.sendActivity(`echo: ${context.activity.text ?? ''}`);
      await next();
    });
  }
}

/** A running echo bot. */
export interface EchoServer {
  /** Base URL, e.g. `http://127.0.0.1:40125`. */
  url: string;
  close(): Promise<void>;
}

/**
 * Start the echo bot on 127.0.0.1 (any free port).
 *
 * @param app - the running Smartcard Assist bot; its pairing service and store only back the
 *   routes the echo benchmark never calls (`/companion/pair/*`, `/healthz`)
 * @param logger - the benchmark's (silent) logger
 */
export async function startEchoServer(app: BotApp, logger: Logger): Promise<EchoServer> {
  const adapter = new ChannelAdapter(new ConfigurationBotFrameworkAuthentication({}), { authRequired: false });
  adapter.onTurnError = async (_context, error) => {
    logger.error({ err: { name: error.name, message: error.message } }, 'echo turn failed');
  };
  const bot = new EchoBot();
  // createHttpServer calls only `bot.run(context)`, which every ActivityHandler has.
  const server: Server = createHttpServer({ adapter, bot: bot as unknown as SmartcardBot, pairing: app.pairing, storage: app.storage, logger });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
