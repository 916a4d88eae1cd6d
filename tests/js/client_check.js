// Drive geproxy with a Node client library no one here wrote; print one JSON
// object: {scenario: "ok" | "error: ..."}.  Run by tests/test_clients.py:
//   node client_check.js ioredis|node-redis PORT RESP(2|3) [scenario ...]
// Over TLS (tests/test_tls_clients.py) when GEPROXY_TLS_CA names the CA file;
// GEPROXY_TLS_CERT and GEPROXY_TLS_KEY add a client certificate.
"use strict";
const assert = require("assert");
const fs = require("fs");

const [lib, port, resp, ...only] = process.argv.slice(2);
const PORT = Number(port);
const RESP = Number(resp);
const tag = `${lib}:${RESP}:${process.pid}`;
const OPT_IN = new Set(["blocking"]);  // run only when named

function tlsOptions() {
  const env = process.env;
  if (!env.GEPROXY_TLS_CA) return null;
  const o = { ca: fs.readFileSync(env.GEPROXY_TLS_CA) };
  if (env.GEPROXY_TLS_CERT) {
    o.cert = fs.readFileSync(env.GEPROXY_TLS_CERT);
    o.key = fs.readFileSync(env.GEPROXY_TLS_KEY);
  }
  return o;
}
const TLS = tlsOptions();

async function connect() {
  if (lib === "ioredis") {
    const Redis = require("ioredis");
    // default options except the protocol under test (ioredis 6 defaults to HELLO 3)
    const opts = { port: PORT, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 50 };
    if (RESP === 2) opts.protocol = 2;
    if (TLS) opts.tls = TLS;
    const c = new Redis(opts);
    await c.connect();
    return {
      raw: (...args) => c.call(...args),
      pipeline: async (cmds) => (await c.pipeline(cmds).exec()).map(([err, v]) => { if (err) throw err; return v; }),
      multi: async (cmds) => (await c.multi(cmds).exec()).map(([err, v]) => { if (err) throw err; return v; }),
      scanAll: (match) => new Promise((resolve, reject) => {
        const seen = [];
        c.scanStream({ match, count: 100 }).on("data", (keys) => seen.push(...keys))
          .on("end", () => resolve(seen)).on("error", reject);
      }),
      subscriber: async () => {
        const s = c.duplicate();
        await s.connect();
        return {
          listen: (channel, onMessage) => { s.on("message", (ch, msg) => onMessage(msg)); return s.subscribe(channel); },
          close: () => s.quit(),
        };
      },
      close: () => c.quit(),
      client: c,
    };
  }
  const { createClient } = require("redis");
  const c = createClient({ socket: { port: PORT, host: "127.0.0.1", ...(TLS ? { tls: true, ...TLS } : {}) }, RESP });
  c.on("error", () => {});  // reconnects are part of the test
  await c.connect();
  return {
    raw: (...args) => c.sendCommand(args.map(String)),
    pipeline: async (cmds) => {
      const m = c.multi();
      for (const cmd of cmds) m.addCommand(cmd.map(String));
      return m.execAsPipeline();
    },
    multi: async (cmds) => {
      const m = c.multi();
      for (const cmd of cmds) m.addCommand(cmd.map(String));
      return m.exec();
    },
    scanAll: async (match) => {
      const seen = [];
      for await (const keys of c.scanIterator({ MATCH: match, COUNT: 100 })) seen.push(...keys);
      return seen;
    },
    subscriber: async () => {
      const s = c.duplicate();
      s.on("error", () => {});
      await s.connect();
      return { listen: (channel, onMessage) => s.subscribe(channel, onMessage), close: () => s.quit() };
    },
    close: () => c.quit(),
    client: c,
  };
}

const scenarios = {
  async setinfo(c) {
    const info = String(await c.raw("CLIENT", "INFO"));
    assert.match(info, /lib-name=/);
    assert.match(info, new RegExp(`resp=${RESP}`));
  },
  async pipeline(c) {
    const cmds = [];
    for (let i = 0; i < 1000; i++) cmds.push(["set", `${tag}:p${i}`, `v${i}`]);
    for (let i = 0; i < 1000; i++) cmds.push(["get", `${tag}:p${i}`]);
    const out = await c.pipeline(cmds);
    assert.strictEqual(out.length, 2000);
    for (let i = 0; i < 1000; i++) assert.strictEqual(String(out[1000 + i]), `v${i}`);
  },
  async multi(c) {
    const k = `{${tag}}:m`;
    const out = await c.multi([["set", k, "1"], ["incr", k], ["get", k]]);
    assert.deepStrictEqual(out.map(String), ["OK", "2", "2"]);
  },
  async mget_mset(c) {
    const args = [];
    for (let i = 0; i < 50; i++) args.push(`${tag}:mk${i}`, `x${i}`);
    assert.strictEqual(String(await c.raw("MSET", ...args)), "OK");
    const keys = args.filter((_, i) => i % 2 === 0);
    const got = await c.raw("MGET", ...keys, `${tag}:missing`);
    assert.strictEqual(got.length, 51);
    for (let i = 0; i < 50; i++) assert.strictEqual(String(got[i]), `x${i}`);
    assert.strictEqual(got[50], null);
    assert.strictEqual(Number(await c.raw("DEL", ...keys)), 50);
  },
  async scan(c) {
    const want = [];
    for (let i = 0; i < 300; i++) want.push(`${tag}:scan:${i}`);
    await c.raw("MSET", ...want.flatMap((k) => [k, "1"]));
    const seen = (await c.scanAll(`${tag}:scan:*`)).map(String);
    assert.deepStrictEqual([...new Set(seen)].sort(), [...want].sort());
    assert.strictEqual(seen.length, want.length, "a key came back twice");
  },
  async lua(c) {
    const k = `{${tag}}:lua`;
    const out = await c.raw("EVAL", "redis.call('set', KEYS[1], ARGV[1]); return {redis.call('get', KEYS[1]), 7}", "1", k, "hi");
    assert.deepStrictEqual([String(out[0]), Number(out[1])], ["hi", 7]);
  },
  async pubsub(c) {
    const sub = await c.subscriber();
    const channel = `${tag}:chan`;
    const got = new Promise((resolve) => sub.listen(channel, (msg) => resolve(String(msg))));
    await new Promise((r) => setTimeout(r, 100));
    const receivers = Number(await c.raw("PUBLISH", channel, "hello"));
    assert.ok(receivers >= 1, `PUBLISH reached ${receivers} subscribers`);
    assert.strictEqual(await Promise.race([got, new Promise((r) => setTimeout(() => r("timeout"), 5000))]), "hello");
    await sub.close();
  },
  async big(c) {
    const k = `${tag}:big`, h = `${tag}:bighash`;
    const value = "v".repeat(1000);
    await c.raw("DEL", k, h);
    for (let i = 0; i < 4; i++) await c.raw("RPUSH", k, ...Array(300).fill(value));
    const list = await c.raw("LRANGE", k, "0", "-1");
    assert.strictEqual(list.length, 1200);
    const fields = [];
    for (let i = 0; i < 2000; i++) fields.push(`f${i}`, value);
    await c.raw("HSET", h, ...fields);
    const hash = await c.raw("HGETALL", h);
    const size = hash instanceof Map ? hash.size : Array.isArray(hash) ? hash.length / 2 : Object.keys(hash).length;
    assert.strictEqual(size, 2000);
    await c.raw("DEL", k, h);
  },
  async blocking(c) {
    const k = `{${tag}}:blk`;
    await c.raw("DEL", k);
    const t = Date.now();
    assert.strictEqual(await c.raw("BLPOP", k, "0.3"), null);
    assert.ok(Date.now() - t >= 250, "BLPOP returned before its timeout");
    await c.raw("RPUSH", k, "x");
    assert.deepStrictEqual((await c.raw("BLPOP", k, "5")).map(String), [k, "x"]);
    const moved = await c.raw("BLMOVE", k, `${k}:2`, "LEFT", "RIGHT", "0.2");
    assert.strictEqual(moved, null);
  },
};

async function main() {
  const out = {};
  const c = await connect();
  for (const [name, fn] of Object.entries(scenarios)) {
    if (only.length ? !only.includes(name) : OPT_IN.has(name)) continue;
    try {
      await fn(c);
      out[name] = "ok";
    } catch (e) {
      out[name] = `error: ${e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e}`;
    }
  }
  await c.close();
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().then(() => process.exit(0), (e) => {
  process.stdout.write(JSON.stringify({ connect: `error: ${e && e.stack || e}` }) + "\n");
  process.exit(0);
});
