// Consumer offsets are stored by the broker: they survive a new consumer instance and a
// kill -9 of the server.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, producer, consumer, message, sendOk, closeAll, closeClient, waitFor, uniq, countBodies, once, createTopic,
} from '../lib/harness.mjs';

const servers = [];
afterEach(async () => { await closeAll(); });
after(async () => { for (const s of servers) await s.stop(); });

async function server() {
  const s = await Server.start();
  servers.push(s);
  return s;
}

async function sendAll(p, topic, bodies) {
  for (const b of bodies) await sendOk(p, message(topic, 'T', b));
}

test('a new consumer instance of the group resumes exactly after the last consumed message', async () => {
  const s = await server();
  const topic = uniq('ons_off');
  await createTopic(s, topic, 4);
  const group = uniq('cg');
  const p = await producer(s.namesrv);
  const first = Array.from({ length: 10 }, (_, i) => `a-${i}`);
  await sendAll(p, topic, first);
  const in1 = [];
  const c1 = await consumer(s.namesrv, { group, topic, inbox: in1, name: 'c1' });
  await waitFor('first 10', 30000, () => in1.length >= 10, () => JSON.stringify(in1.map(g => g.body)));
  await closeClient(c1); // persists its offsets
  assert.deepEqual(countBodies(in1), once(first));

  const second = Array.from({ length: 8 }, (_, i) => `b-${i}`); // 2 per queue, round-robin
  await sendAll(p, topic, second);
  const in2 = [];
  await consumer(s.namesrv, { group, topic, inbox: in2, name: 'c2' });
  await waitFor('the 8 new ones', 30000, () => second.every(b => in2.some(g => g.body === b)), () => JSON.stringify(in2.map(g => g.body)));
  // one consume at a time per queue, in queue order: a re-delivered old message would have
  // come before the new ones of its queue
  assert.deepEqual(countBodies(in2), once(second));
});

test('offsets and messages survive kill -9 and restart of the server (new ports)', async () => {
  const s = await server();
  const topic = uniq('ons_restart');
  await createTopic(s, topic, 4);
  const group = uniq('cg');
  let p = await producer(s.namesrv);
  const first = Array.from({ length: 8 }, (_, i) => `before-${i}`);
  await sendAll(p, topic, first);
  const in1 = [];
  await consumer(s.namesrv, { group, topic, inbox: in1, name: 'c1' });
  await waitFor('first 8', 30000, () => in1.length >= 8);
  await closeAll(); // consumer persists offsets; the old clients go away with the old ports
  assert.deepEqual(countBodies(in1), once(first));

  const oldNamesrv = s.namesrv;
  await s.restart();
  assert.notEqual(s.namesrv, oldNamesrv);

  p = await producer(s.namesrv);
  const second = Array.from({ length: 8 }, (_, i) => `after-${i}`);
  await sendAll(p, topic, second);
  const in2 = [];
  await consumer(s.namesrv, { group, topic, inbox: in2, name: 'c2' });
  await waitFor('the 8 sent after the restart', 30000, () => second.every(b => in2.some(g => g.body === b)), () => JSON.stringify(in2.map(g => g.body)));
  assert.deepEqual(countBodies(in2), once(second), 'resumed exactly after the pre-restart offsets');

  const in3 = [];
  await consumer(s.namesrv, { group: uniq('cg_fresh'), topic, inbox: in3, name: 'c3' });
  await waitFor('all 16 with a new group', 30000, () => in3.length >= 16);
  assert.deepEqual(countBodies(in3), once([...first, ...second]), 'pre-restart messages are still there');
});
