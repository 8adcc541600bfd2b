import { randomBytes } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { freePort } from './registry.js';

/**
 * A plain-HTTP proxy on 127.0.0.1 in front of a real registry that misbehaves on request: the faults
 * and hostile answers that real registries, CDNs and networks produce, one rule at a time. Requests
 * no rule matches pass through untouched (the Host header included, so the registry's upload
 * Locations point back at the proxy).
 */
export type Fault =
  /** Drop the connection with a TCP RST before answering. */
  | { kind: 'reset' }
  /** Answer with this status (5xx, 408, 429...) without asking the registry; `code` is the error body's (default UNAVAILABLE). */
  | { kind: 'status'; status: number; retryAfter?: string; code?: string }
  /**
   * Send the registry's headers (its Content-Length too) and `after` body bytes, then drop the
   * connection; with `ignoreRange`, as a server without range support would.
   */
  | { kind: 'cut'; after: number; ignoreRange?: boolean }
  /** Never answer. */
  | { kind: 'stall' }
  /** Send the headers and `after` body bytes, then go silent with the connection open. */
  | { kind: 'stall-body'; after: number }
  /** A complete, well-framed response whose body is only the first `to` bytes. */
  | { kind: 'truncate'; to: number }
  /** The registry's body followed by `bytes` more; `declared` puts them in Content-Length, else the body is chunked. */
  | { kind: 'extra'; bytes: number; declared: boolean }
  /** The registry's response with another Content-Type. */
  | { kind: 'content-type'; value: string }
  /** A 307 to the same path at another origin (`http://127.0.0.1:PORT`), as registries send blobs to a CDN. */
  | { kind: 'redirect'; origin: string }
  /** Answer 200 with these bytes instead of the registry's; `chunked` leaves out Content-Length. */
  | { kind: 'serve'; body: Buffer; contentType: string; chunked?: boolean }
  /** Forward without the Range header, as a server that does not do ranges answers 200 in full. */
  | { kind: 'no-ranges' }
  /** The registry's body in `chunk`-byte pieces, `delayMs` apart. */
  | { kind: 'slow'; chunk: number; delayMs: number }
  /**
   * Send the headers and `after` body bytes, then the rest once `release` resolves: a download that
   * is in progress for exactly as long as a test needs, however loaded the machine.
   */
  | { kind: 'hold'; after: number; release: Promise<void> };

export interface FaultRule {
  /** Default: any method. */
  method?: string;
  /** Matched against the request's path and query. */
  path: RegExp;
  /** Which of the requests matching method and path get the fault (1-based, counted per rule); default all. */
  nth?: number | number[];
  fault: Fault;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** When it arrived (Date.now()). */
  at: number;
  /** Body bytes written so far by a `slow` fault, updated as they go out (to time kills by progress). */
  sent: number;
  /** The fault applied, if any. */
  fault?: Fault['kind'];
}

export interface FaultProxy {
  /** `127.0.0.1:PORT`, usable as the registry part of an image reference. */
  host: string;
  url: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Adds a rule; the first rule (in order of adding) that applies to a request wins. */
  add(rule: FaultRule): void;
  /** Forgets the rules, their counts and the recorded requests. */
  reset(): void;
  close(): Promise<void>;
}

interface ActiveRule extends FaultRule {
  seen: number;
}

/**
 * The fault for a request: every rule matching its method and path counts it (so `nth` numbers the
 * requests to that path, whichever rule handled the earlier ones), and the first whose `nth` it is wins.
 */
function faultFor(rules: ActiveRule[], req: IncomingMessage): Fault | undefined {
  let chosen: Fault | undefined;
  for (const rule of rules) {
    if ((rule.method !== undefined && rule.method !== req.method) || !rule.path.test(req.url ?? '')) continue;
    rule.seen++;
    const applies = rule.nth === undefined || (Array.isArray(rule.nth) ? rule.nth.includes(rule.seen) : rule.nth === rule.seen);
    if (applies) chosen ??= rule.fault;
  }
  return chosen;
}

async function readWhole(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends the registry's response, changed as the fault says; the body is held whole first (test blobs are small). */
async function answer(fault: Fault | undefined, record: RecordedRequest, req: IncomingMessage, up: IncomingMessage, res: ServerResponse): Promise<void> {
  const headers = { ...up.headers };
  const status = up.statusCode ?? 502;
  if (fault === undefined || req.method === 'HEAD' || (fault.kind !== 'content-type' && status !== 200 && status !== 206)) {
    res.writeHead(status, headers);
    up.pipe(res);
    return;
  }
  const body = await readWhole(up);
  switch (fault.kind) {
    case 'cut':
    case 'stall-body':
      res.writeHead(status, headers);
      res.flushHeaders();
      // A cut drops the connection once the bytes are out; a stall leaves it open (close() ends it).
      res.write(body.subarray(0, fault.after), () => {
        if (fault.kind === 'cut') res.socket?.destroy();
      });
      return;
    case 'truncate':
      res.writeHead(status, { ...headers, 'content-length': String(Math.min(fault.to, body.length)) });
      res.end(body.subarray(0, fault.to));
      return;
    case 'extra': {
      const more = Buffer.concat([body, randomBytes(fault.bytes)]);
      delete headers['content-length'];
      res.writeHead(status, fault.declared ? { ...headers, 'content-length': String(more.length) } : headers);
      res.end(more);
      return;
    }
    case 'content-type':
      res.writeHead(status, { ...headers, 'content-type': fault.value });
      res.end(body);
      return;
    case 'hold':
      res.writeHead(status, headers);
      res.write(body.subarray(0, fault.after));
      record.sent += Math.min(fault.after, body.length);
      await fault.release;
      res.end(body.subarray(fault.after));
      return;
    case 'slow':
      res.writeHead(status, headers);
      for (let at = 0; at < body.length && !res.destroyed; at += fault.chunk) {
        const piece = body.subarray(at, at + fault.chunk);
        res.write(piece);
        record.sent += piece.length;
        await sleep(fault.delayMs);
      }
      res.end();
      return;
    default:
      res.writeHead(status, headers);
      res.end(body);
  }
}

/**
 * Starts a fault proxy forwarding to `upstream` (`http://127.0.0.1:PORT`, a TestRegistry's url), on
 * `port` when given (to bring a proxy back where a closed one was) or a free one.
 */
export async function startFaultProxy(upstream: string, port?: number): Promise<FaultProxy> {
  let rules: ActiveRule[] = [];
  const requests: RecordedRequest[] = [];

  const server = createServer((req, res) => {
    const fault = faultFor(rules, req);
    const record: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, at: Date.now(), sent: 0, ...(fault && { fault: fault.kind }) };
    requests.push(record);
    switch (fault?.kind) {
      case 'reset':
        req.socket.resetAndDestroy();
        return;
      case 'stall':
        return;
      case 'status':
        res.writeHead(fault.status, {
          'content-type': 'application/json',
          ...(fault.retryAfter !== undefined && { 'retry-after': fault.retryAfter }),
        });
        res.end(JSON.stringify({ errors: [{ code: fault.code ?? 'UNAVAILABLE', message: 'injected fault' }] }));
        return;
      case 'redirect':
        res.writeHead(307, { location: `${fault.origin}${req.url ?? '/'}`, 'content-length': '0' }).end();
        return;
      case 'serve':
        res.writeHead(200, { 'content-type': fault.contentType, ...(!fault.chunked && { 'content-length': String(fault.body.length) }) });
        if (req.method === 'HEAD') res.end();
        else if (fault.chunked) {
          // Several writes, so the body really goes out in chunks with no length known up front.
          for (let at = 0; at < fault.body.length; at += 64 * 1024) res.write(fault.body.subarray(at, at + 64 * 1024));
          res.end();
        } else res.end(fault.body);
        return;
    }
    const headers = { ...req.headers };
    if (fault?.kind === 'no-ranges' || (fault?.kind === 'cut' && fault.ignoreRange)) delete headers.range;
    const forward = request(new URL(req.url ?? '/', upstream), { method: req.method, headers }, (up) => {
      answer(fault?.kind === 'no-ranges' ? undefined : fault, record, req, up, res).catch(() => res.destroy());
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });

  const listen = port ?? (await freePort());
  await new Promise<void>((resolve) => server.listen(listen, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${listen}`,
    url: `http://127.0.0.1:${listen}`,
    requests,
    add(rule) {
      rules.push({ ...rule, seen: 0 });
    },
    reset() {
      rules = [];
      requests.length = 0;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
