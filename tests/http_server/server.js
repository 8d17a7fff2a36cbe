#!/usr/bin/env node
// A real HTTP server for sluice's tests and benchmarks: JSON/CSV entities to
// poll (/e/...), a POST receiver that records rows with their
// Idempotency-Key (/ingest...), a webhook sink (/hook...), and control
// endpoints (/__...) that inject faults and read back what arrived.
// README.md beside this file lists every endpoint and query parameter.
//
// Usage: node server.js [--port N] [--discard] [--exit-with-parent]
// Listens on 127.0.0.1 (port 0: the kernel picks one) and prints exactly
// "listening <port>\n" on stdout once it accepts connections.
//
// Only node's own modules: no npm install needed. Handlers stay cheap (no
// per-request logging, large bodies cached) so that one core serves well
// over 10,000 small requests per second on keep-alive connections.
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const opts = {port: 0, discard: false, exitWithParent: false};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port' && i + 1 < argv.length) {
      opts.port = Number(argv[++i]);
    } else if (a.startsWith('--port=')) {
      opts.port = Number(a.slice('--port='.length));
    } else if (a === '--discard') {
      opts.discard = true;
    } else if (a === '--exit-with-parent') {
      opts.exitWithParent = true;
    } else {
      process.stderr.write(`server.js: unknown argument '${a}'\n` +
                           'usage: node server.js [--port N] [--discard] [--exit-with-parent]\n');
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    process.stderr.write('server.js: --port needs an integer in 0..65535\n');
    process.exit(2);
  }
  return opts;
}

const options = parseArgs(process.argv.slice(2));

// ------------------------------------------------------------------ state

// Last-Modified of version v is this plus (v - 1) hours: fixed per
// version, in the past, and later for every bump.
const kFirstLastModifiedMs = Date.UTC(2024, 0, 1, 0, 0, 0);
const kVersionStepMs = 3600 * 1000;
// Generated /e/ bodies at least this large are cached, up to kCacheBytes.
const kCacheMinBytes = 4096;
const kCacheBytes = 256 * 1024 * 1024;

const kDefaultFaults = Object.freeze({
  seed: 1,
  rate_500: 0,
  rate_503: 0,
  rate_429: 0,
  retry_after: null,
  rate_cut: 0,
  rate_drop_reply: 0,
  rate_slow: 0,
  slow_ms: 0,
  reject_marker: null,
  status_for_marker: 400,
  discard: null,  // null: as on the command line
});

// xorshift32 over a mixed seed: deterministic, cheap, good enough to pick faults.
function makeRng(seed) {
  let x = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  if (x === 0) x = 0x6d2b79f5;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

function freshState() {
  return {
    versions: new Map(),   // path without query -> version (absent: 1)
    urlCounts: new Map(),  // path+query as sent -> requests (non-control)
    stats: {
      requests: 0,
      control: 0,
      by_status: Object.create(null),
      by_prefix: {e: 0, ingest: 0, hook: 0, other: 0},
    },
    faults: {...kDefaultFaults},
    rng: makeRng(kDefaultFaults.seed),
    ingest: {
      requests: 0,
      bytes: 0,
      accepted: 0,
      duplicates: 0,
      rejected: 0,
      faulted: 0,
      rows: 0,
    },
    keys: new Set(),  // Idempotency-Keys of accepted requests
    batches: [],      // accepted requests in arrival order: {key, path, rows: [JSON text]}
    hooks: [],        // {path, headers, body}
    cache: new Map(),
    cacheBytes: 0,
  };
}

let state = freshState();

function discarding() {
  return state.faults.discard === null ? options.discard : state.faults.discard;
}

// ---------------------------------------------------------------- helpers

const kJson = 'application/json';

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function httpDate(ms) {
  return new Date(ms).toUTCString();
}

function lastModifiedMs(version) {
  return kFirstLastModifiedMs + (version - 1) * kVersionStepMs;
}

function countStatus(key) {
  const s = state.stats.by_status;
  s[key] = (s[key] || 0) + 1;
}

// Sends a whole response with an explicit Content-Length (never chunked).
function reply(res, status, headers, body, control) {
  if (res.headersSent || res.destroyed) return;
  if (!control) countStatus(status);
  if (body === undefined || body === null) body = '';
  if (status !== 304 && status !== 204) {
    headers['Content-Length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  }
  res.writeHead(status, headers);
  res.end(status === 304 || status === 204 ? undefined : body);
}

function replyJson(res, status, value, control, extraHeaders) {
  const headers = {'Content-Type': kJson, ...extraHeaders};
  reply(res, status, headers, JSON.stringify(value), control);
}

// Promises a Content-Length it never fulfils: headers and half the body,
// then the connection is destroyed.
function cutReply(res, body) {
  countStatus('cut');
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const full = Math.max(buf.length, 2);
  res.writeHead(200, {'Content-Type': kJson, 'Content-Length': full});
  res.write(buf.subarray(0, Math.floor(full / 2)), () => res.socket && res.socket.destroy());
  // In case the write callback never runs (peer already gone).
  setTimeout(() => res.socket && res.socket.destroy(), 1000).unref();
}

// Closes the connection without any answer.
function dropReply(res) {
  countStatus('dropped');
  if (res.socket) res.socket.destroy();
}

function intParam(query, name, min, max) {
  const raw = query.get(name);
  if (raw === null) return null;
  if (!/^-?\d+$/.test(raw)) throw new HttpError(400, `query parameter ${name}=${raw} is not an integer`);
  const v = Number(raw);
  if (v < min || v > max) throw new HttpError(400, `query parameter ${name}=${raw} is not in ${min}..${max}`);
  return v;
}

// "cut" or an HTTP status from a fail / fail_once parameter.
function failValue(query, name) {
  const raw = query.get(name);
  if (raw === 'cut' || raw === 'drop') return raw;
  return intParam(query, name, 100, 599);
}

// The failure that fail= / fail_once= (+ fail_times=) asks for on the
// n-th request of this URL, or null.
function queryFailure(query, n) {
  if (query === null) return null;
  if (query.has('fail')) return failValue(query, 'fail');
  if (query.has('fail_once')) {
    const times = query.has('fail_times') ? intParam(query, 'fail_times', 0, 1e12) : 1;
    if (n <= times) return failValue(query, 'fail_once');
  }
  if (query.get('cut') === '1') return 'cut';
  return null;
}

function retryAfterHeaders(query) {
  const headers = {};
  if (query === null) return headers;
  if (query.has('retry_after')) headers['Retry-After'] = query.get('retry_after');
  if (query.has('retry_after_date')) {
    const sec = intParam(query, 'retry_after_date', -1e9, 1e9);
    // Rounded up to the next whole second: the client waits at least sec.
    headers['Retry-After'] = httpDate(Math.ceil((Date.now() + sec * 1000) / 1000) * 1000);
  }
  return headers;
}

// Answers an injected failure; cutBody is what a cut response pretends to send.
function sendFailure(res, failure, query, cutBody) {
  if (failure === 'cut') return cutReply(res, cutBody);
  if (failure === 'drop') return dropReply(res);
  replyJson(res, failure, {error: `injected ${failure}`}, false, retryAfterHeaders(query));
}

function readBody(req, cb) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    chunks.push(c);
    size += c.length;
  });
  req.on('end', () => cb(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
}

// Reads and forgets the body, counting its bytes.
function countBody(req, cb) {
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
  });
  req.on('end', () => cb(size));
}

function later(ms, fn) {
  if (ms > 0) setTimeout(fn, ms); else fn();
}

// ---------------------------------------------------------- GET /e/<id>

function entityId(p) {
  let raw = p.slice('/e/'.length);
  try {
    raw = decodeURIComponent(raw);
  } catch (e) {
    // keep it as sent
  }
  return /^-?\d+$/.test(raw) && raw.length < 16 ? Number(raw) : raw;
}

function stringHash(s) {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) >>> 0;
  return h;
}

function entityObject(id, version) {
  const temp = typeof id === 'number' ? id * 0.5 : (stringHash(id) % 1000) * 0.5;
  return {id: id, temp: temp, name: `station ${id}`, version: version};
}

// Adds "pad" so that the object's JSON is about `size` bytes.
function padded(obj, size) {
  const base = Buffer.byteLength(JSON.stringify(obj)) + ',"pad":""'.length;
  obj.pad = 'x'.repeat(Math.max(0, size - base));
  return obj;
}

function csvField(v) {
  const s = String(v);
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

// {type, body} for GET /e/<id> at `version`; rows/wrap/size/format shape it.
function entityBody(p, query, version) {
  const id = entityId(p);
  const rows = query === null ? null : intParam(query, 'rows', 0, 1e8);
  const size = query === null ? null : intParam(query, 'size', 0, 1e9);
  const wrap = query !== null && query.get('wrap') === '1';
  const format = query === null ? 'json' : (query.get('format') || 'json');
  const make = (row) => {
    const o = entityObject(id, version);
    if (row !== null) o.row = row;
    return size === null ? o : padded(o, size);
  };
  if (format === 'csv') {
    const o = entityObject(id, version);
    const line = `${csvField(o.id)},${o.temp},${csvField(o.name)}\n`;
    return {type: 'text/csv', body: 'id,temp,name\n' + line.repeat(rows === null ? 1 : rows)};
  }
  if (format === 'jsonl' || format === 'ndjson') {
    const n = rows === null ? 1 : rows;
    const lines = new Array(n);
    for (let i = 0; i < n; i++) lines[i] = JSON.stringify(make(rows === null ? null : i));
    return {type: 'application/x-ndjson', body: n === 0 ? '' : lines.join('\n') + '\n'};
  }
  if (format !== 'json') throw new HttpError(400, `format=${format}: expected json, jsonl or csv`);
  let payload;
  if (rows === null) {
    payload = JSON.stringify(make(null));
  } else {
    const parts = new Array(rows);
    for (let i = 0; i < rows; i++) parts[i] = JSON.stringify(make(i));
    payload = '[' + parts.join(',') + ']';
  }
  if (wrap) payload = '{"data":{"items":' + payload + '}}';
  return {type: kJson, body: payload};
}

// Body as a Buffer, from the cache when it is large.
function cachedEntityBody(p, query, version, rawQuery) {
  const key = version + ' ' + p + '?' + rawQuery;
  const hit = state.cache.get(key);
  if (hit !== undefined) return hit;
  const made = entityBody(p, query, version);
  const out = {type: made.type, body: Buffer.from(made.body)};
  if (out.body.length >= kCacheMinBytes) {
    if (state.cacheBytes + out.body.length > kCacheBytes) {
      state.cache.clear();
      state.cacheBytes = 0;
    }
    if (out.body.length <= kCacheBytes) {
      state.cache.set(key, out);
      state.cacheBytes += out.body.length;
    }
  }
  return out;
}

// Query parameters that do not change an entity's body (so not in the cache key).
const kBehaviourParams = new Set(['fail', 'fail_once', 'fail_times', 'retry_after', 'retry_after_date',
                                  'delay_ms', 'cut', 'bad']);

function bodyQuery(query) {
  if (query === null) return '';
  const parts = [];
  for (const [k, v] of query) {
    if (!kBehaviourParams.has(k)) parts.push(k + '=' + v);
  }
  return parts.sort().join('&');
}

function notModified(req, etag, lmMs) {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) {
    // RFC 9110: If-None-Match wins over If-Modified-Since; weak comparison.
    if (inm.trim() === '*') return true;
    return inm.split(',').some((t) => {
      t = t.trim();
      return (t.startsWith('W/') ? t.slice(2) : t) === etag;
    });
  }
  const ims = req.headers['if-modified-since'];
  if (ims !== undefined) {
    const t = Date.parse(ims);
    return !Number.isNaN(t) && t >= lmMs;
  }
  return false;
}

function serveEntity(req, res, p, query, n) {
  const failure = queryFailure(query, n);
  const version = state.versions.get(p) || 1;
  const etag = `"v${version}"`;
  const lmMs = lastModifiedMs(version);
  if (failure !== null) {
    return sendFailure(res, failure, query,
                       failure === 'cut' ? cachedEntityBody(p, query, version, bodyQuery(query)).body : '');
  }
  const headers = {'ETag': etag, 'Last-Modified': httpDate(lmMs)};
  if (notModified(req, etag, lmMs)) return reply(res, 304, headers);
  if (query !== null && query.get('bad') === '1') {
    headers['Content-Type'] = kJson;
    return reply(res, 200, headers, '{"id": 1,');
  }
  const made = cachedEntityBody(p, query, version, bodyQuery(query));
  headers['Content-Type'] = made.type;
  reply(res, 200, headers, made.body);
}

// ------------------------------------------------------- POST /ingest...

function isSpace(c) {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function checkRow(value, where) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, `${where} is not a JSON object`);
  }
}

// The elements of a valid JSON array of objects, as the text that was
// sent: re-serialising would round integers beyond 2^53.
function splitArray(text, count) {
  const rows = new Array(count);
  let i = text.indexOf('[') + 1;
  for (let k = 0; k < count; k++) {
    while (isSpace(text.charCodeAt(i)) || text.charCodeAt(i) === 0x2c /* , */) i++;
    const start = i;
    let depth = 0;
    for (;; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22 /* " */) {
        for (i++; text.charCodeAt(i) !== 0x22; i++) {
          if (text.charCodeAt(i) === 0x5c /* \ */) i++;
        }
      } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        depth++;
      } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
        if (--depth === 0) {
          i++;
          break;
        }
      }
    }
    rows[k] = text.slice(start, i);
  }
  return rows;
}

// Each row of a JSON array or JSON-lines body, as the JSON text sent.
function parseRows(buf, contentType) {
  let i = 0;
  while (i < buf.length && isSpace(buf[i])) i++;
  const ndjson = contentType !== undefined && /^application\/(x-ndjson|jsonl|x-jsonlines)/i.test(contentType);
  const text = buf.toString('utf8');
  if (!ndjson && buf[i] === 0x5b /* [ */) {
    let arr;
    try {
      arr = JSON.parse(text);
    } catch (e) {
      throw new HttpError(400, `invalid JSON array: ${e.message}`);
    }
    if (!Array.isArray(arr)) throw new HttpError(400, 'body is not a JSON array');
    for (let k = 0; k < arr.length; k++) checkRow(arr[k], `element ${k}`);
    return splitArray(text, arr.length);
  }
  const rows = [];
  let start = 0;
  let line = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    line++;
    const t = text.slice(start, end).trim();
    start = end + 1;
    if (t === '') continue;
    let v;
    try {
      v = JSON.parse(t);
    } catch (e) {
      throw new HttpError(400, `invalid JSON on line ${line}: ${e.message}`);
    }
    checkRow(v, `line ${line}`);
    rows.push(t);
  }
  return rows;
}

// Draws the PRNG fault for one ingest request, in arrival order: two
// draws per request whatever the rates, so the sequence depends only on
// the seed and the order of requests.
function drawFault() {
  const f = state.faults;
  const u = state.rng();
  const slow = state.rng() < f.rate_slow;
  let kind = null;
  let edge = f.rate_500;
  if (u < edge) {
    kind = 500;
  } else if (u < (edge += f.rate_503)) {
    kind = 503;
  } else if (u < (edge += f.rate_429)) {
    kind = 429;
  } else if (u < (edge += f.rate_cut)) {
    kind = 'cut';
  } else if (u < (edge += f.rate_drop_reply)) {
    kind = 'drop_reply';
  }
  return {kind, slow};
}

function ingestFault(res, kind) {
  state.ingest.faulted++;
  if (kind === 'cut') return cutReply(res, '{"error":"injected cut, the rest never comes"}');
  const headers = {};
  if ((kind === 429 || kind === 503) && state.faults.retry_after !== null) {
    headers['Retry-After'] = state.faults.retry_after;
  }
  replyJson(res, kind, {error: `injected ${kind}`}, false, headers);
}

function serveIngest(req, res, p, query, n) {
  const ing = state.ingest;
  ing.requests++;
  const fault = drawFault();
  const finish = (body, bytes) => {
    ing.bytes += bytes;
    let delay;
    try {
      delay = (query === null ? 0 : intParam(query, 'delay_ms', 0, 1e9) || 0) +
              (fault.slow ? state.faults.slow_ms : 0);
    } catch (e) {
      return replyError(res, e);
    }
    later(delay, () => {
      try {
        const failure = queryFailure(query, n);
        if (failure !== null) {
          ing.faulted++;
          return sendFailure(res, failure, query, '{"error":"injected cut, the rest never comes"}');
        }
        if (fault.kind !== null && fault.kind !== 'drop_reply') return ingestFault(res, fault.kind);
        const marker = state.faults.reject_marker;
        if (marker !== null && body !== null && body.indexOf(marker) >= 0) {
          ing.rejected++;
          return replyJson(res, state.faults.status_for_marker, {error: `rejected: contains ${marker}`});
        }
        let answer;
        if (body === null) {
          ing.accepted++;
          answer = {discarded: bytes};
        } else {
          const key = req.headers['idempotency-key'];
          if (key !== undefined && state.keys.has(key)) {
            ing.duplicates++;
            answer = {duplicate: true};
          } else {
            let rows;
            try {
              rows = parseRows(body, req.headers['content-type']);
            } catch (e) {
              ing.rejected++;
              throw e;
            }
            if (key !== undefined) state.keys.add(key);
            state.batches.push({key: key === undefined ? null : key, path: p, rows});
            ing.accepted++;
            ing.rows += rows.length;
            answer = {accepted: rows.length};
          }
        }
        // drop_reply: stored, but the client never hears about it.
        if (fault.kind === 'drop_reply') {
          ing.faulted++;
          return dropReply(res);
        }
        replyJson(res, 200, answer);
      } catch (e) {
        replyError(res, e);
      }
    });
  };
  if (discarding()) {
    countBody(req, (bytes) => finish(null, bytes));
  } else {
    readBody(req, (buf) => finish(buf, buf.length));
  }
}

// ----------------------------------------------------------- POST /hook...

function serveHook(req, res, p, query, n) {
  readBody(req, (buf) => {
    let delay;
    try {
      delay = query === null ? 0 : intParam(query, 'delay_ms', 0, 1e9) || 0;
    } catch (e) {
      return replyError(res, e);
    }
    later(delay, () => {
      try {
        const failure = queryFailure(query, n);
        if (failure !== null) return sendFailure(res, failure, query, '{"error":"injected cut"}');
        let body;
        try {
          body = JSON.parse(buf.toString('utf8'));
        } catch (e) {
          throw new HttpError(400, `invalid JSON: ${e.message}`);
        }
        state.hooks.push({path: p, headers: req.headers, body});
        replyJson(res, 200, {stored: state.hooks.length});
      } catch (e) {
        replyError(res, e);
      }
    });
  });
}

// ------------------------------------------------------------- control

function dump(res, file) {
  if (!file || !path.isAbsolute(file)) throw new HttpError(400, '__dump needs ?file=/absolute/path.jsonl');
  const out = fs.createWriteStream(file);
  const batches = state.batches.slice();  // what has arrived until now
  let answered = false;
  let rows = 0;
  out.on('error', (e) => {
    if (answered) return;
    answered = true;
    replyJson(res, 500, {error: `cannot write ${file}: ${e.message}`}, true);
  });
  out.on('finish', () => {
    if (answered) return;
    answered = true;
    replyJson(res, 200, {rows, file}, true);
  });
  let b = 0;
  let r = 0;
  const pump = () => {
    while (!answered && b < batches.length) {
      let chunk = '';
      while (b < batches.length && chunk.length < (1 << 20)) {
        const batch = batches[b];
        const prefix = `{"key":${JSON.stringify(batch.key)},"path":${JSON.stringify(batch.path)},"row":`;
        for (; r < batch.rows.length && chunk.length < (1 << 20); r++) {
          chunk += prefix + batch.rows[r] + '}\n';
          rows++;
        }
        if (r >= batch.rows.length) {
          b++;
          r = 0;
        }
      }
      if (!out.write(chunk)) return out.once('drain', pump);
    }
    if (!answered) out.end();
  };
  pump();
}

function parseFaults(buf) {
  let v;
  try {
    v = JSON.parse(buf.length === 0 ? '{}' : buf.toString('utf8'));
  } catch (e) {
    throw new HttpError(400, `__faults: invalid JSON: ${e.message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new HttpError(400, '__faults: expected a JSON object');
  const f = {...kDefaultFaults};
  for (const [k, val] of Object.entries(v)) {
    if (!(k in kDefaultFaults)) {
      throw new HttpError(400, `__faults: unknown key '${k}' (known: ${Object.keys(kDefaultFaults).join(', ')})`);
    }
    if (k.startsWith('rate_')) {
      if (typeof val !== 'number' || val < 0 || val > 1) throw new HttpError(400, `__faults: ${k} must be in 0..1`);
    } else if (k === 'seed' || k === 'slow_ms') {
      if (!Number.isInteger(val) || val < 0) throw new HttpError(400, `__faults: ${k} must be an integer >= 0`);
    } else if (k === 'status_for_marker') {
      if (!Number.isInteger(val) || val < 100 || val > 599) throw new HttpError(400, `__faults: ${k} must be an HTTP status`);
    } else if (k === 'retry_after') {
      if (val !== null && typeof val !== 'string' && typeof val !== 'number') {
        throw new HttpError(400, '__faults: retry_after must be a string');
      }
      f[k] = val === null ? null : String(val);
      continue;
    } else if (k === 'reject_marker') {
      if (val !== null && (typeof val !== 'string' || val === '')) {
        throw new HttpError(400, '__faults: reject_marker must be a non-empty string');
      }
    } else if (k === 'discard') {
      if (val !== null && typeof val !== 'boolean') throw new HttpError(400, '__faults: discard must be true or false');
    }
    f[k] = val;
  }
  const total = f.rate_500 + f.rate_503 + f.rate_429 + f.rate_cut + f.rate_drop_reply;
  if (total > 1 + 1e-9) throw new HttpError(400, `__faults: the rates add up to ${total}, more than 1`);
  return f;
}

function requireMethod(req, method) {
  if (req.method !== method) throw new HttpError(405, `${req.url} takes ${method}, not ${req.method}`);
}

function control(req, res, p, query) {
  state.stats.control++;
  const q = query || new URLSearchParams();
  switch (p) {
    case '/__stats':
      requireMethod(req, 'GET');
      return replyJson(res, 200, state.stats, true);
    case '/__count': {
      requireMethod(req, 'GET');
      const url = q.get('url');
      if (url === null) throw new HttpError(400, '__count needs ?url=<path+query>');
      return replyJson(res, 200, {url, count: state.urlCounts.get(url) || 0}, true);
    }
    case '/__bump': {
      requireMethod(req, 'POST');
      const target = q.get('path');
      if (target === null) throw new HttpError(400, '__bump needs ?path=/e/<id>');
      const version = (state.versions.get(target) || 1) + 1;
      state.versions.set(target, version);
      return replyJson(res, 200, {path: target, version, etag: `"v${version}"`}, true);
    }
    case '/__reset':
      requireMethod(req, 'POST');
      state = freshState();
      return replyJson(res, 200, {reset: true}, true);
    case '/__faults':
      if (req.method === 'GET') return replyJson(res, 200, {...state.faults, discard: discarding()}, true);
      requireMethod(req, 'POST');
      return readBody(req, (buf) => {
        try {
          state.faults = parseFaults(buf);
          state.rng = makeRng(state.faults.seed);
          replyJson(res, 200, {...state.faults, discard: discarding()}, true);
        } catch (e) {
          replyError(res, e, true);
        }
      });
    case '/__received': {
      requireMethod(req, 'GET');
      const ing = state.ingest;
      return replyJson(res, 200, {
        requests: ing.requests,
        accepted: ing.accepted,
        duplicates: ing.duplicates,
        rows: ing.rows,
        keys: state.keys.size,
        rejected: ing.rejected,
        faulted: ing.faulted,
        bytes: ing.bytes,
        discard: discarding(),
      }, true);
    }
    case '/__dump':
      requireMethod(req, 'POST');
      return dump(res, q.get('file'));
    case '/__hooks':
      requireMethod(req, 'GET');
      return replyJson(res, 200, q.get('meta') === '1' ? state.hooks : state.hooks.map((h) => h.body), true);
    default:
      throw new HttpError(404, `no control endpoint ${p}`);
  }
}

// --------------------------------------------------------------- dispatch

function replyError(res, e, control) {
  if (res.headersSent) {
    if (res.socket) res.socket.destroy();
    return;
  }
  const status = e instanceof HttpError ? e.status : 500;
  replyJson(res, status, {error: e instanceof HttpError ? e.message : `server.js bug: ${e.stack}`}, control);
}

function handle(req, res) {
  const url = req.url;
  const qpos = url.indexOf('?');
  const p = qpos < 0 ? url : url.slice(0, qpos);
  const query = qpos < 0 ? null : new URLSearchParams(url.slice(qpos + 1));
  const isControl = p.startsWith('/__');
  try {
    if (isControl) return control(req, res, p, query);
    const stats = state.stats;
    stats.requests++;
    const n = (state.urlCounts.get(url) || 0) + 1;
    state.urlCounts.set(url, n);
    if (p.startsWith('/e/')) {
      stats.by_prefix.e++;
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `${p} takes GET`);
      const delay = query === null ? 0 : intParam(query, 'delay_ms', 0, 1e9) || 0;
      req.resume();
      return later(delay, () => {
        try {
          serveEntity(req, res, p, query, n);
        } catch (e) {
          replyError(res, e);
        }
      });
    }
    if (p.startsWith('/ingest')) {
      stats.by_prefix.ingest++;
      if (req.method !== 'POST' && req.method !== 'PUT') throw new HttpError(405, `${p} takes POST`);
      return serveIngest(req, res, p, query, n);
    }
    if (p.startsWith('/hook')) {
      stats.by_prefix.hook++;
      requireMethod(req, 'POST');
      return serveHook(req, res, p, query, n);
    }
    stats.by_prefix.other++;
    throw new HttpError(404, `nothing at ${p}`);
  } catch (e) {
    req.resume();
    replyError(res, e, isControl);
  }
}

// ------------------------------------------------------------------ main

const server = http.createServer(handle);
// Keep-alive for as long as any test or benchmark keeps a connection idle.
server.keepAliveTimeout = 60 * 1000;
server.headersTimeout = 65 * 1000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.timeout = 0;

server.on('error', (e) => {
  process.stderr.write(`server.js: ${e.message}\n`);
  process.exit(1);
});

server.listen(options.port, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

// A bug in a handler must not take the server (and every test using it)
// down; the harness shows stderr when a test fails.
let reporting = false;
process.on('uncaughtException', (e) => {
  if (reporting) return;
  reporting = true;
  try {
    process.stderr.write(`server.js: uncaught: ${e.stack}\n`);
  } catch (ignored) {
    // nowhere to report it
  }
  reporting = false;
});
// Whoever reads our output is gone (the test binary died): so is our use.
process.stdout.on('error', () => process.exit(0));
process.stderr.on('error', () => process.exit(0));

if (options.exitWithParent) {
  // The parent (a test binary) may die without stopping us: once we are
  // re-parented, nobody needs us any more.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 500).unref();
}
