/**
 * A minimal browser for the passcode page, for specs and integration tests: it
 * opens the one-time link, keeps the session cookie, sends `Host` and `Origin`
 * as a browser would for a same-origin form, and follows 303 redirects.
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
  private cookie: string | null = null;
  private readonly origin: URL;

  /** @param link - the one-time link `http://127.0.0.1:PORT/?t=TOKEN` */
  constructor(private readonly link: string) {
    this.origin = new URL(link);
  }

  /** Open the link (spends the token), follow its same-origin refresh, and land on the page. */
  async open(): Promise<PageResponse> {
    const url = new URL(this.link);
    const first = await this.follow(await this.raw('GET', `${url.pathname}${url.search}`));
    return first.status === 200 && /http-equiv="refresh" content="0;url=\/"/.test(first.body) ? this.get() : first;
  }

  /** GET the page. */
  async get(): Promise<PageResponse> {
    return this.follow(await this.raw('GET', '/'));
  }

  /** POST a form as the page's own form would, then follow the redirect. */
  async post(path: string, fields: Record<string, string>): Promise<PageResponse> {
    return this.follow(await this.raw('POST', path, new URLSearchParams(fields).toString()));
  }

  private async follow(res: PageResponse): Promise<PageResponse> {
    let current = res;
    for (let i = 0; i < 3 && current.status === 303; i += 1) current = await this.raw('GET', String(current.headers['location'] ?? '/'));
    return current;
  }

  private raw(method: string, path: string, body?: string): Promise<PageResponse> {
    const headers: Record<string, string> = { host: this.origin.host };
    if (this.cookie) headers['cookie'] = this.cookie;
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
          if (setCookie) this.cookie = setCookie.split(';')[0]!;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }
}
