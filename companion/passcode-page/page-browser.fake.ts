/**
 * A minimal browser for the passcode page, for specs and integration tests: it
 * opens the one-time link, keeps the session cookie (sent only under its Path,
 * as a browser does), follows the page's refresh to its scoped path, sends
 * `Host` and `Origin` as a browser would for a same-origin form, sends back the
 * page's form token as the page's forms do, and follows 303 redirects.
 * (Chromium drives the page in the end-to-end test; this is the no-browser tier.)
 */
import { request as httpRequest } from 'node:http';

export interface PageResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** Read `data-state` of a rendered page. */
export function pageState(html: string): string | null {
  return /<body data-state="([a-z_]+)"/.exec(html)?.[1] ?? null;
}

/** Text of the page without tags (entities for & < > " ' decoded). */
export function pageText(html: string): string {
  return html
    .replace(/<style>[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&hellip;/g, '…')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ')
    .trim();
}

export class PageBrowser {
  /** `name=value` of the session cookie, and the Path it was set for. */
  private cookie: { pair: string; path: string } | null = null;
  /** The page's path (`/p/<scope>/` once the link was opened). */
  private pagePath = '/';
  /** The session's form token, read from the last page with a form. */
  private formToken: string | null = null;
  private readonly origin: URL;

  /** @param link - the one-time link `http://127.0.0.1:PORT/?t=TOKEN` */
  constructor(private readonly link: string) {
    this.origin = new URL(link);
  }

  /** The page's path after {@link open}: `/p/<scope>/`. */
  get path(): string {
    return this.pagePath;
  }

  /**
   * What this browser holds of its session, for tests that forge requests with parts of it.
   *
   * @returns `cookie` as sent (`name=value`) with the `cookiePath` it was set for, and the page's form token (null before a form was seen)
   */
  get held(): { cookie: string | null; cookiePath: string | null; formToken: string | null } {
    return { cookie: this.cookie?.pair ?? null, cookiePath: this.cookie?.path ?? null, formToken: this.formToken };
  }

  /** Open the link (spends the token), follow its same-origin refresh, and land on the page. */
  async open(): Promise<PageResponse> {
    const url = new URL(this.link);
    const first = await this.follow(await this.raw('GET', `${url.pathname}${url.search}`));
    const next = first.status === 200 ? /http-equiv="refresh" content="0;url=([^"]+)"/.exec(first.body)?.[1] : undefined;
    if (!next) return first;
    this.pagePath = new URL(next, this.origin).pathname;
    return this.get();
  }

  /** GET the page. */
  async get(): Promise<PageResponse> {
    return this.follow(await this.raw('GET', this.pagePath));
  }

  /**
   * POST a form as the page's own form would (with the page's form token), then follow the redirect.
   * When no page with a form was seen yet, the page is fetched first, as a person sees it before sending.
   *
   * @param path - the form's action, `/unlock`, `/verify` or `/retry` (relative to the page's path)
   * @param fields - the visible fields
   */
  async post(path: string, fields: Record<string, string>): Promise<PageResponse> {
    if (this.formToken === null) await this.get();
    const target = new URL(path.replace(/^\//, ''), new URL(this.pagePath, this.origin)).pathname;
    const body = new URLSearchParams({ ...(this.formToken !== null ? { form_token: this.formToken } : {}), ...fields }).toString();
    return this.follow(await this.raw('POST', target, body));
  }

  private async follow(res: PageResponse): Promise<PageResponse> {
    let current = res;
    for (let i = 0; i < 3 && current.status === 303; i += 1) current = await this.raw('GET', String(current.headers['location'] ?? this.pagePath));
    return current;
  }

  private raw(method: string, path: string, body?: string): Promise<PageResponse> {
    const headers: Record<string, string> = { host: this.origin.host };
    // RFC 6265 5.1.4 path-match: the cookie goes only to its Path and below.
    if (this.cookie && (path === this.cookie.path || path.startsWith(this.cookie.path.endsWith('/') ? this.cookie.path : `${this.cookie.path}/`))) headers['cookie'] = this.cookie.pair;
    if (method === 'POST') {
      headers['origin'] = this.origin.origin;
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['sec-fetch-site'] = 'same-origin';
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: this.origin.hostname, port: Number(this.origin.port), method, path, headers, setHost: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const setCookie = res.headers['set-cookie']?.[0];
          if (setCookie) {
            const [pair, ...attrs] = setCookie.split(';');
            const cookiePath = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('path='))?.slice(5) ?? '/';
            this.cookie = { pair: pair!.trim(), path: cookiePath };
            this.formToken = null;
          }
          const text = Buffer.concat(chunks).toString('utf8');
          const token = /<input type="hidden" name="form_token" value="([^"]*)">/.exec(text)?.[1];
          if (token !== undefined) this.formToken = token;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }
}
