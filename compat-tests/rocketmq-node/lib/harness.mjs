// Test harness for the ali-ons suite: starts a real `gateway` process (RocketMQ name server
// and broker on loopback, ports chosen by the server), creates ali-ons clients for it, and
// offers deadline-based waits. Each test file runs in its own process (node --test), which
// matters because ali-ons keeps process-wide state (its MQClient table and default producer).

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import ons from 'ali-ons';
import kafkajs from 'kafkajs';

export const { Producer, Consumer, Message } = ons;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

export const BROKER_NAME = 'broker-1';
export const CLUSTER = 'DefaultCluster';

export function gatewayBin() {
  return process.env.GATEWAY_BIN || path.join(repoRoot, 'target', 'debug', 'gateway');
}

let counter = 0;
/** A name unique within this run. */
export function uniq(prefix) {
  counter += 1;
  return `${prefix}_${process.pid}_${Date.now() % 1e9}_${counter}`;
}

export const sleep = ms => new Promise(r => setTimeout(r, ms));

/**
 * A running gateway. `start()` waits for the ready line; `kill9()` SIGKILLs it;
 * `restart()` starts it again on the same data directory (the ports change).
 */
export class Server {
  constructor(dataDir, sets = [], args = []) {
    this.dataDir = dataDir;
    this.sets = sets;
    this.args = args;
    this.proc = null;
  }

  /** `sets` are `--set key=value` strings; `args` more command-line arguments. */
  static async start(sets = [], args = []) {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'rmq-node-'));
    const s = new Server(path.join(base, 'data'), sets, args);
    s.base = base;
    await s.#spawn();
    return s;
  }

  async #spawn() {
    const args = ['--data-dir', this.dataDir,
      '--kafka-addr', '127.0.0.1:0', '--namesrv-addr', '127.0.0.1:0',
      '--broker-addr', '127.0.0.1:0', '--metrics-addr', '127.0.0.1:0',
      '--set', 'group.initial.rebalance.delay.ms=0'];
    for (const s of this.sets) args.push('--set', s);
    args.push(...this.args);
    const logDir = path.join(repoRoot, 'target', 'test-logs');
    fs.mkdirSync(logDir, { recursive: true });
    this.logPath = path.join(logDir, `rocketmq-node-${path.basename(this.base)}.log`);
    const log = fs.openSync(this.logPath, 'a');
    const proc = spawn(gatewayBin(), args, { stdio: ['ignore', 'pipe', log] });
    fs.closeSync(log);
    this.proc = proc;
    const line = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line within 30 s; see ${this.logPath}`)), 30000);
      proc.once('exit', code => { clearTimeout(timer); reject(new Error(`gateway exited (${code}); see ${this.logPath}`)); });
      proc.once('error', err => { clearTimeout(timer); reject(err); });
      const rl = createInterface({ input: proc.stdout });
      rl.on('line', l => {
        if (l.startsWith('gateway ready ')) { clearTimeout(timer); resolve(l); }
      });
    });
    const field = k => {
      const f = line.split(/\s+/).find(x => x.startsWith(`${k}=`));
      if (!f) throw new Error(`ready line has no ${k}=: ${line}`);
      return f.slice(k.length + 1);
    };
    this.kafka = field('kafka');
    this.namesrv = field('namesrv');
    this.broker = field('broker');
    this.metrics = field('metrics');
    proc.removeAllListeners('exit');
    this.exited = false;
    proc.once('exit', () => { this.exited = true; });
  }

  get running() {
    return this.proc && !this.exited && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill9() {
    if (!this.running) return;
    const p = this.proc;
    const gone = new Promise(r => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }

  async restart() {
    await this.kill9();
    await this.#spawn();
  }

  async stop() {
    await this.kill9();
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}

/** A kafkajs client for the server's Kafka listener (same storage as the RocketMQ side). */
export function kafka(s) {
  return new kafkajs.Kafka({
    clientId: 'rmq-compat', brokers: [s.kafka], logLevel: kafkajs.logLevel.NOTHING, retry: { retries: 3 },
  });
}

/**
 * Creates a topic with `queues` partitions (= RocketMQ queues on broker-1). ali-ons 3.12.0
 * cannot auto-create topics: its route lookup throws on TOPIC_NOT_EXIST (17) instead of
 * falling back to TBW102 like the Java client, so every Node test creates its topics first.
 */
export async function createTopic(s, topic, queues = 4) {
  const admin = kafka(s).admin();
  await admin.connect();
  try {
    const created = await admin.createTopics({ topics: [{ topic, numPartitions: queues, replicationFactor: 1 }], waitForLeaders: true });
    if (!created) throw new Error(`topic ${topic} already existed`);
  } finally {
    await admin.disconnect();
  }
}

// ---------------------------------------------------------------------------
// ali-ons clients
// ---------------------------------------------------------------------------

const quietLogger = {
  info() {}, debug() {},
  warn() {},
  error(...a) { if (process.env.ONS_DEBUG) console.error(...a); },
};

// ali-ons only reads `httpclient` when it has no nameSrv; it asserts one is given.
const noHttp = { request() { throw new Error('no HTTP name-server lookup in tests'); } };

const clients = [];

function common(namesrv) {
  return {
    nameSrv: namesrv,
    httpclient: noHttp,
    logger: quietLogger,
    clientIP: '127.0.0.1',
    pollNameServerInteval: 2000,
    heartbeatBrokerInterval: 2000,
    rebalanceInterval: 1000,
    persistConsumerOffsetInterval: 1000,
  };
}

export async function producer(namesrv, opts = {}) {
  const p = new Producer({
    ...common(namesrv),
    producerGroup: uniq('pg'),
    instanceName: uniq('pi'),
    sendMsgTimeout: 5000,
    retryTimesWhenSendFailed: 0,
    ...opts,
  });
  p.errors = [];
  p.on('error', e => p.errors.push(e));
  clients.push(p);
  await withTimeout(p.ready(), 30000, 'producer ready');
  return p;
}

/**
 * A push consumer that records every message it handles into `inbox` (an array), then applies
 * `behaviour(msg)` (may throw or return Consumer.ACTION_RETRY).
 */
export async function consumer(namesrv, { group, topic, expr = '*', inbox, name = 'c', behaviour, ...opts }) {
  const c = new Consumer({
    ...common(namesrv),
    consumerGroup: group,
    instanceName: uniq('ci'),
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    ...opts,
  });
  c.errors = [];
  c.on('error', e => c.errors.push(e));
  clients.push(c);
  c.subscribe(topic, expr, async msg => {
    inbox.push(record(name, msg));
    if (behaviour) return behaviour(msg);
    return undefined;
  });
  await withTimeout(c.ready(), 30000, 'consumer ready');
  return c;
}

export function record(name, msg) {
  return {
    consumer: name,
    topic: msg.topic,
    queueId: msg.queueId,
    queueOffset: msg.queueOffset,
    body: msg.body ? msg.body.toString() : '',
    tags: msg.tags,
    keys: msg.keys,
    properties: { ...msg.properties },
    reconsumeTimes: msg.reconsumeTimes,
    msgId: msg.msgId,
    bornTimestamp: msg.bornTimestamp,
    storeTimestamp: msg.storeTimestamp,
    at: Date.now(),
  };
}

export function message(topic, tag, body, { keys, props } = {}) {
  const m = new Message(topic, tag, body);
  if (keys) m.keys = keys;
  if (props) for (const [k, v] of Object.entries(props)) m.properties[k] = v;
  return m;
}

/**
 * ali-ons picks the queue of a message with a sharding key as the md5(key) % n-th of the
 * distinct queue ids in its publish route; this finds a key that lands on `queueId`, so a test
 * can address one queue through the client's own selection.
 */
export async function shardingKeyFor(p, topic, queueId) {
  const info = await p.tryToFindTopicPublishInfo(topic);
  const ids = [];
  for (const mq of info.messageQueueList) if (!ids.includes(mq.queueId)) ids.push(mq.queueId);
  const index = ids.indexOf(queueId);
  if (index < 0) throw new Error(`queue ${queueId} not in the route of ${topic}: ${JSON.stringify(ids)}`);
  for (let i = 0; i < 100000; i++) {
    const k = `k-${i}`;
    if (createHash('md5').update(k).digest().readUInt32BE() % ids.length === index) return k;
  }
  throw new Error('no sharding key found');
}

/** Sends and checks SEND_OK; ali-ons reports queueId as the header string, normalized here. */
export async function sendOk(p, msg) {
  const r = await p.send(msg);
  if (r.sendStatus !== 'SEND_OK') throw new Error(`send status ${r.sendStatus}`);
  r.messageQueue.queueId = Number(r.messageQueue.queueId);
  return r;
}

/** Closes every client made here plus ali-ons' process-wide default producer. */
export async function closeAll() {
  while (clients.length) {
    const c = clients.pop();
    try { await withTimeout(c.close(), 15000, 'close'); } catch { /* already closed */ }
  }
  if (Producer.defaultProducer) {
    try { await withTimeout(Producer.defaultProducer.close(), 15000, 'close default producer'); } catch { /* ignore */ }
    Producer.defaultProducer = null;
  }
}

export async function closeClient(c) {
  const i = clients.indexOf(c);
  if (i >= 0) clients.splice(i, 1);
  await withTimeout(c.close(), 15000, 'close');
}

// ---------------------------------------------------------------------------
// waiting
// ---------------------------------------------------------------------------

export async function withTimeout(promise, ms, what) {
  let t;
  const timeout = new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what} did not finish within ${ms} ms`)), ms); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(t);
  }
}

/** Polls `pred()` every 100 ms until true, or throws with `describe()` after `ms`. */
export async function waitFor(what, ms, pred, describe = () => '') {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; ${describe()}`);
    await sleep(100);
  }
}

export function countBodies(list) {
  const m = {};
  for (const g of list) m[g.body] = (m[g.body] || 0) + 1;
  return m;
}

export function once(bodies) {
  return Object.fromEntries(bodies.map(b => [b, 1]));
}

// ---------------------------------------------------------------------------
// raw TCP (malformed frames)
// ---------------------------------------------------------------------------

/**
 * Writes `bytes` on a fresh connection (half-closing afterwards when `halfClose`) and resolves
 * with { data, closed } once the server closes, or closed=false after `ms`.
 */
export function poke(addr, bytes, { halfClose = true, ms = 5000 } = {}) {
  const [host, port] = addr.split(':');
  return new Promise(resolve => {
    const chunks = [];
    const sock = net.connect({ host, port: Number(port) });
    let done = false;
    const finish = closed => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => finish(false), ms);
    sock.on('connect', () => {
      sock.write(bytes);
      if (halfClose) sock.end();
    });
    sock.on('data', d => chunks.push(d));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
  });
}

export function frame(headerJson, body = Buffer.alloc(0)) {
  const h = Buffer.from(headerJson);
  const f = Buffer.alloc(8);
  f.writeUInt32BE(4 + h.length + body.length, 0);
  f.writeUInt32BE(h.length, 4);
  return Buffer.concat([f, h, body]);
}

export function parseFrames(buf) {
  const out = [];
  let b = buf;
  while (b.length >= 8) {
    const len = b.readUInt32BE(0);
    if (b.length < 4 + len) break;
    const hl = b.readUInt32BE(4) & 0xffffff;
    out.push(JSON.parse(b.subarray(8, 8 + hl).toString()));
    b = b.subarray(4 + len);
  }
  return out;
}

/**
 * How many requests the server refused with a remark containing `text`, from its audit log
 * (ali-ons retries a SYSTEM_ERROR answer and reports only a generic failure).
 */
export function refusals(s, text) {
  return fs.readFileSync(s.logPath, 'utf8').split('\n')
    .filter(l => l.includes('RocketMQ request refused') && l.includes(text)).length;
}

/** `promise` must reject, and the server must have logged a refusal with `remark`. */
export async function refusedWith(s, remark, promise) {
  const before = refusals(s, remark);
  await promise.then(() => { throw new Error(`expected a refusal (${remark})`); }, () => {});
  await waitFor(`a refusal logged with ${remark}`, 5000, () => refusals(s, remark) > before);
}
