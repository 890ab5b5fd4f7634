// gRPC-Web for the pages: a proto3 codec that reads the messages from web/schema.json (made from
// the daemon's own descriptor set, so field numbers are never written here), and calls over
// fetch. Messages are plain objects keyed by the proto's JSON names; enums are their names;
// 64-bit integers are Numbers (every one the API sends fits); a Timestamp is {seconds, nanos}.
'use strict';

(function () {
  const SB = (window.SB = window.SB || {});

  const T = { DOUBLE: 1, FLOAT: 2, INT64: 3, UINT64: 4, INT32: 5, FIXED64: 6, FIXED32: 7, BOOL: 8,
    STRING: 9, MESSAGE: 11, BYTES: 12, UINT32: 13, ENUM: 14, SFIXED32: 15, SFIXED64: 16, SINT32: 17, SINT64: 18 };
  const CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
    'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
    'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

  class GrpcError extends Error {
    constructor(code, message) {
      super(message || CODES[code] || 'error ' + code);
      this.code = code;
      this.codeName = CODES[code] || String(code);
    }
  }
  SB.GrpcError = GrpcError;
  SB.CODES = CODES;

  const utf8 = new TextEncoder();
  const fromUtf8 = new TextDecoder();

  function wireType(t) {
    switch (t) {
      case T.DOUBLE: case T.FIXED64: case T.SFIXED64: return 1;
      case T.FLOAT: case T.FIXED32: case T.SFIXED32: return 5;
      case T.STRING: case T.BYTES: case T.MESSAGE: return 2;
      default: return 0;
    }
  }

  class Writer {
    constructor() { this.parts = []; }
    byte(b) { this.parts.push(b & 0xff); }
    varint(v) {
      let n = BigInt.asUintN(64, BigInt(v));
      while (n > 0x7fn) { this.byte(Number(n & 0x7fn) | 0x80); n >>= 7n; }
      this.byte(Number(n));
    }
    bytes(arr) { this.varint(arr.length); for (const b of arr) this.parts.push(b); }
    fixed(v, size, float) {
      const dv = new DataView(new ArrayBuffer(size));
      if (float) { size === 8 ? dv.setFloat64(0, v, true) : dv.setFloat32(0, v, true); }
      else if (size === 8) dv.setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
      else dv.setUint32(0, v >>> 0, true);
      for (let i = 0; i < size; i++) this.parts.push(dv.getUint8(i));
    }
    finish() { return Uint8Array.from(this.parts); }
  }

  class Reader {
    constructor(buf) { this.buf = buf; this.pos = 0; this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); }
    more() { return this.pos < this.buf.length; }
    varint() {
      let shift = 0n, n = 0n;
      for (;;) {
        if (this.pos >= this.buf.length) throw new Error('truncated varint');
        const b = this.buf[this.pos++];
        n |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return n;
        shift += 7n;
      }
    }
    chunk() { const len = Number(this.varint()); const c = this.buf.subarray(this.pos, this.pos + len); this.pos += len; return c; }
    skip(wt) {
      if (wt === 0) this.varint();
      else if (wt === 1) this.pos += 8;
      else if (wt === 2) this.chunk();
      else if (wt === 5) this.pos += 4;
      else throw new Error('unsupported wire type ' + wt);
    }
  }

  class Codec {
    constructor(schema) {
      this.schema = schema;
      this.byNumber = {};
      for (const [name, m] of Object.entries(schema.messages)) {
        const map = {};
        for (const f of m.f) map[f.no] = f;
        this.byNumber[name] = map;
      }
    }
    message(name) {
      const m = this.schema.messages[name];
      if (!m) throw new Error('unknown message ' + name);
      return m;
    }
    enumNumber(f, v) {
      if (typeof v === 'number') return v;
      const values = this.schema.enums[f.m] || {};
      for (const [num, n] of Object.entries(values)) if (n === v) return Number(num);
      throw new Error(f.n + ': unknown value ' + v);
    }
    encode(name, obj) {
      const w = new Writer();
      this.write(w, name, obj || {});
      return w.finish();
    }
    write(w, name, obj) {
      const m = this.message(name);
      for (const f of m.f) {
        const v = obj[f.n];
        if (v === undefined || v === null) continue;
        if (f.r && f.t === T.MESSAGE && this.message(f.m).map) {
          for (const [k, val] of Object.entries(v)) this.field(w, f, { key: k, value: val });
        } else if (f.r) {
          for (const item of v) this.field(w, f, item);
        } else {
          // proto3: defaults are not sent, except where presence is explicit.
          const isDefault = v === '' || v === 0 || v === false || (f.t === T.ENUM && this.enumNumber(f, v) === 0);
          if (isDefault && !f.o && !f.opt && f.t !== T.MESSAGE) continue;
          this.field(w, f, v);
        }
      }
    }
    field(w, f, v) {
      w.varint((f.no << 3) | wireType(f.t));
      switch (f.t) {
        case T.STRING: w.bytes(utf8.encode(String(v))); break;
        case T.BYTES: w.bytes(v); break;
        case T.BOOL: w.varint(v ? 1 : 0); break;
        case T.ENUM: w.varint(this.enumNumber(f, v)); break;
        case T.SINT32: case T.SINT64: { const n = BigInt(v); w.varint(n >= 0n ? n << 1n : ((-n) << 1n) - 1n); break; }
        case T.DOUBLE: w.fixed(Number(v), 8, true); break;
        case T.FLOAT: w.fixed(Number(v), 4, true); break;
        case T.FIXED64: case T.SFIXED64: w.fixed(v, 8, false); break;
        case T.FIXED32: case T.SFIXED32: w.fixed(v, 4, false); break;
        case T.MESSAGE: { const inner = new Writer(); this.write(inner, f.m, v); w.bytes(inner.finish()); break; }
        default: w.varint(v);
      }
    }
    decode(name, buf) {
      const m = this.message(name);
      const byNo = this.byNumber[name];
      const obj = {};
      for (const f of m.f) {
        if (f.r) obj[f.n] = f.t === T.MESSAGE && this.message(f.m).map ? {} : [];
        else if (f.o || f.opt || f.t === T.MESSAGE) continue;
        else if (f.t === T.STRING) obj[f.n] = '';
        else if (f.t === T.BOOL) obj[f.n] = false;
        else if (f.t === T.ENUM) obj[f.n] = (this.schema.enums[f.m] || {})['0'] || 0;
        else if (f.t === T.BYTES) obj[f.n] = new Uint8Array();
        else obj[f.n] = 0;
      }
      const r = new Reader(buf);
      while (r.more()) {
        const tag = Number(r.varint());
        const no = tag >>> 3, wt = tag & 7;
        const f = byNo[no];
        if (!f) { r.skip(wt); continue; }
        const scalar = f.t !== T.MESSAGE && f.t !== T.STRING && f.t !== T.BYTES;
        if (f.r && scalar && wt === 2) {
          const packed = new Reader(r.chunk());
          while (packed.more()) obj[f.n].push(this.value(packed, f));
          continue;
        }
        const v = this.value(r, f);
        if (f.r && f.t === T.MESSAGE && this.message(f.m).map) obj[f.n][v.key] = v.value;
        else if (f.r) obj[f.n].push(v);
        else obj[f.n] = v;
      }
      return obj;
    }
    value(r, f) {
      switch (f.t) {
        case T.STRING: return fromUtf8.decode(r.chunk());
        case T.BYTES: return r.chunk().slice();
        case T.MESSAGE: return this.decode(f.m, r.chunk());
        case T.BOOL: return r.varint() !== 0n;
        case T.ENUM: { const n = Number(BigInt.asIntN(32, r.varint())); return (this.schema.enums[f.m] || {})[String(n)] || n; }
        case T.INT32: return Number(BigInt.asIntN(32, r.varint()));
        case T.INT64: return Number(BigInt.asIntN(64, r.varint()));
        case T.UINT32: case T.UINT64: return Number(r.varint());
        case T.SINT32: case T.SINT64: { const n = r.varint(); return Number((n >> 1n) ^ -(n & 1n)); }
        case T.DOUBLE: { const v = r.dv.getFloat64(r.pos, true); r.pos += 8; return v; }
        case T.FLOAT: { const v = r.dv.getFloat32(r.pos, true); r.pos += 4; return v; }
        case T.FIXED64: case T.SFIXED64: { const v = r.dv.getBigUint64(r.pos, true); r.pos += 8; return Number(v); }
        case T.FIXED32: case T.SFIXED32: { const v = r.dv.getUint32(r.pos, true); r.pos += 4; return v; }
        default: return Number(r.varint());
      }
    }
  }
  SB.Codec = Codec;

  function frame(bytes) {
    const out = new Uint8Array(5 + bytes.length);
    new DataView(out.buffer).setUint32(1, bytes.length, false);
    out.set(bytes, 5);
    return out;
  }

  function trailerStatus(headersLike) {
    const status = headersLike.get('grpc-status');
    if (status === null || status === undefined) return null;
    let message = headersLike.get('grpc-message') || '';
    try { message = decodeURIComponent(message); } catch (_) { /* shown as sent */ }
    return { code: Number(status), message };
  }

  function parseTrailers(bytes) {
    const map = new Map();
    for (const line of fromUtf8.decode(bytes).split('\r\n')) {
      const i = line.indexOf(':');
      if (i > 0) map.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    return map;
  }

  // One API client: `base` is where gRPC-Web is served, `auth` an optional function returning the
  // `authorization` header's value.
  class Api {
    constructor(base, schema, auth) {
      this.base = base.replace(/\/+$/, '');
      this.codec = new Codec(schema);
      this.methods = schema.methods;
      this.auth = auth || (() => null);
    }
    async open(method, request, signal) {
      const types = this.methods[method];
      if (!types) throw new Error('unknown method ' + method);
      const headers = { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1', 'accept': 'application/grpc-web+proto' };
      const a = this.auth();
      if (a) headers.authorization = a;
      let res;
      try {
        res = await fetch(this.base + '/' + method, {
          method: 'POST', headers, body: frame(this.codec.encode(types[0], request)), signal, cache: 'no-store',
        });
      } catch (e) {
        if (signal && signal.aborted) throw e;
        throw new GrpcError(14, 'cannot reach the server (' + (e.message || e) + ')');
      }
      if (res.status === 403) {
        throw new GrpcError(7, 'the server refused this page (its origin ' + location.origin + ' is not in server.grpc_web_origins)');
      }
      if (!res.ok) throw new GrpcError(14, 'the server answered HTTP ' + res.status);
      const early = trailerStatus(res.headers);
      if (early && early.code !== 0) throw new GrpcError(early.code, early.message);
      return { res, output: types[1] };
    }
    // Reads the frames of an answer: each message to `onMessage`; resolves when it ends well,
    // rejects with a GrpcError otherwise.
    async read(res, output, onMessage) {
      const reader = res.body.getReader();
      let buf = new Uint8Array(0);
      let status = trailerStatus(res.headers);
      for (;;) {
        const { value, done } = await reader.read();
        if (value) {
          const joined = new Uint8Array(buf.length + value.length);
          joined.set(buf); joined.set(value, buf.length); buf = joined;
          while (buf.length >= 5) {
            const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1, false);
            if (buf.length < 5 + len) break;
            const flag = buf[0], body = buf.subarray(5, 5 + len);
            if (flag & 0x80) status = trailerStatus(parseTrailers(body));
            else onMessage(this.codec.decode(output, body));
            buf = buf.slice(5 + len);
          }
        }
        if (done) break;
      }
      if (!status) throw new GrpcError(14, 'the connection ended without a status');
      if (status.code !== 0) throw new GrpcError(status.code, status.message);
    }
    async unary(method, request) {
      const { res, output } = await this.open(method, request);
      let answer = null;
      await this.read(res, output, (m) => { answer = m; });
      if (!answer) throw new GrpcError(13, 'no answer');
      return answer;
    }
    // A server stream: `onMessage` per message; resolves when the server ends it.
    async stream(method, request, onMessage, signal) {
      const { res, output } = await this.open(method, request, signal);
      await this.read(res, output, onMessage);
    }
  }
  SB.Api = Api;

  // The page's configuration and schema, and the API's address as the page should call it.
  SB.boot = async function () {
    const [config, schema] = await Promise.all([
      fetch('web/config.json', { cache: 'no-store' }).then((r) => r.json()),
      fetch('web/schema.json', { cache: 'no-store' }).then((r) => r.json()),
    ]);
    let base = config.grpcUrl;
    if (!base) base = (config.grpcTls ? 'https://' : 'http://') + location.hostname.replace(/^([^[].*:.*)$/, '[$1]') + ':' + config.grpcPort;
    else if (base.startsWith('/')) base = location.origin + base;
    return { config, schema, base };
  };

  SB.ms = (ts) => (ts ? ts.seconds * 1000 + Math.floor((ts.nanos || 0) / 1e6) : null);
})();
