// Clustering (two consumers split the queues, each message once) and broadcasting (each
// consumer gets everything), plus tag filtering.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, producer, consumer, message, sendOk, closeAll, waitFor, uniq, countBodies, once,
  shardingKeyFor, sleep, createTopic,
} from '../lib/harness.mjs';

const servers = [];
afterEach(async () => { await closeAll(); });
after(async () => { for (const s of servers) await s.stop(); });

async function server() {
  const s = await Server.start();
  servers.push(s);
  return s;
}

/**
 * Sends `body` to queue `q` (q > 0) via a sharding key that ali-ons maps there. ali-ons cannot
 * address queue 0 this way: it treats queue id 0 as "no queue" (`queueIds[i] || ''`).
 */
async function sendToQueue(p, topic, tag, body, q) {
  const m = message(topic, tag, body);
  m.shardingKey = await shardingKeyFor(p, topic, q);
  const r = await sendOk(p, m);
  assert.equal(r.messageQueue.queueId, q, `${body} went to queue ${q}`);
  return r;
}

test('clustering: two consumers of one group split the queues; each message consumed once', async () => {
  const s = await server();
  const topic = uniq('ons_cluster');
  const group = uniq('cg');
  await createTopic(s, topic, 4);
  const p = await producer(s.namesrv);
  const inbox = [];
  await consumer(s.namesrv, { group, topic, inbox, name: 'c1' });
  await consumer(s.namesrv, { group, topic, inbox, name: 'c2' });

  // probe rounds until one whole round is consumed once per probe, by both consumers
  const deadline = Date.now() + 60000;
  for (let round = 0; ; round++) {
    assert.ok(Date.now() < deadline, `rebalance never settled: ${JSON.stringify(inbox)}`);
    // four consecutive sends: ali-ons round-robins over the 4 queues, one probe each
    const probes = [0, 1, 2, 3].map(i => `probe-${round}-${i}`);
    const hit = new Set();
    for (const b of probes) hit.add((await sendOk(p, message(topic, 'P', b))).messageQueue.queueId);
    assert.equal(hit.size, 4, 'one probe per queue');
    await waitFor('a probe round', 30000, () => probes.every(b => inbox.some(g => g.body === b)));
    const seen = inbox.filter(g => probes.includes(g.body));
    if (seen.length === 4 && new Set(seen.map(g => g.consumer)).size === 2) break;
    await sleep(500);
  }
  const before = inbox.length;
  const bodies = Array.from({ length: 40 }, (_, i) => `m-${i}`);
  for (const b of bodies) await sendOk(p, message(topic, 'M', b));
  await waitFor('all 40', 30000, () => bodies.every(b => inbox.some(g => g.body === b)),
    () => JSON.stringify(countBodies(inbox.slice(before))));
  const main = inbox.slice(before).filter(g => g.body.startsWith('m-'));
  assert.deepEqual(countBodies(main), once(bodies), 'each message exactly once across the group');
  const owner = {};
  for (const g of main) (owner[g.queueId] ||= new Set()).add(g.consumer);
  for (const [q, who] of Object.entries(owner)) assert.equal(who.size, 1, `queue ${q} owned by one consumer`);
  assert.equal(new Set(Object.values(owner).flatMap(w => [...w])).size, 2, 'both consumers own queues');
});

test('broadcasting: each consumer receives every message', async () => {
  const s = await server();
  const topic = uniq('ons_bcast');
  await createTopic(s, topic, 4);
  const group = uniq('cg');
  const p = await producer(s.namesrv);
  const bodies = Array.from({ length: 12 }, (_, i) => `b-${i}`);
  for (const b of bodies) await sendOk(p, message(topic, 'B', b));
  const in1 = []; const in2 = [];
  await consumer(s.namesrv, { group, topic, inbox: in1, name: 'c1', isBroadcast: true });
  await consumer(s.namesrv, { group, topic, inbox: in2, name: 'c2', isBroadcast: true });
  await waitFor('c1 gets all 12', 30000, () => in1.length >= 12, () => JSON.stringify(in1.map(g => g.body)));
  await waitFor('c2 gets all 12', 30000, () => in2.length >= 12, () => JSON.stringify(in2.map(g => g.body)));
  assert.deepEqual(countBodies(in1), once(bodies));
  assert.deepEqual(countBodies(in2), once(bodies));
});

test('tag filter: "TagA || TagB" gets exactly those, "*" gets everything', async () => {
  const s = await server();
  const topic = uniq('ons_tags');
  await createTopic(s, topic, 4);
  const p = await producer(s.namesrv);
  const plan = ['TagC', 'TagA', 'TagC', 'TagB', 'TagA', 'TagC', 'TagD', 'TagB'];
  const all = [];
  for (const [i, tag] of plan.entries()) {
    const body = `${tag}-${i}`;
    await sendToQueue(p, topic, tag, body, 2); // one queue, so "last one seen" bounds the rest
    all.push(body);
  }
  const ab = []; const star = [];
  await consumer(s.namesrv, { group: uniq('cg_ab'), topic, expr: 'TagA || TagB', inbox: ab, name: 'ab' });
  await consumer(s.namesrv, { group: uniq('cg_all'), topic, expr: '*', inbox: star, name: 'all' });
  await waitFor('the last TagB', 30000, () => ab.some(g => g.body === all[all.length - 1]), () => JSON.stringify(ab));
  await waitFor('all 8', 30000, () => star.length >= all.length, () => JSON.stringify(star));
  assert.deepEqual(ab.map(g => g.body), all.filter(b => b.startsWith('TagA') || b.startsWith('TagB')));
  assert.deepEqual(star.map(g => g.body), all, '"*" gets everything in queue order');
});
