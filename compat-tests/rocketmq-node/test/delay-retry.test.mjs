// Delay levels, retry via send-back, and the dead-letter queue.
import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, producer, consumer, message, sendOk, closeAll, waitFor, uniq, createTopic, kafka,
} from '../lib/harness.mjs';

const servers = [];
afterEach(async () => { await closeAll(); });
after(async () => { for (const s of servers) await s.stop(); });

async function server() {
  const s = await Server.start();
  servers.push(s);
  return s;
}

test('delay level 2 (5 s) is delivered no earlier than 5 s after the send, within 30 s', async () => {
  const s = await server();
  const topic = uniq('ons_delay');
  await createTopic(s, topic, 4);
  const p = await producer(s.namesrv);
  await sendOk(p, message(topic, 'Now', 'now'));
  const inbox = [];
  await consumer(s.namesrv, { group: uniq('cg'), topic, inbox });
  await waitFor('the undelayed message', 30000, () => inbox.length >= 1);
  const m = message(topic, 'Later', 'later');
  m.delayTimeLevel = 2;
  const sentAt = Date.now();
  await sendOk(p, m);
  await waitFor('the delayed message', 30000, () => inbox.length >= 2, () => JSON.stringify(inbox));
  const g = inbox[1];
  assert.equal(g.body, 'later');
  assert.equal(g.topic, topic, 'delivered on the real topic');
  assert.equal(g.tags, 'Later');
  const waited = g.at - sentAt;
  assert.ok(waited >= 5000, `delivered ${waited} ms after send, before delay level 2`);
  assert.ok(waited <= 30000, `delivered ${waited} ms after send`);
  assert.equal(inbox.length, 2, 'delivered once');
});

test('a failing handler gets the message again (reconsumeTimes 1, 10 s later), then it is dead-lettered', async t => {
  const s = await server();
  const topic = uniq('ons_retry');
  await createTopic(s, topic, 4);
  const group = uniq('cg');
  const dlq = `%DLQ%${group}`;
  const p = await producer(s.namesrv);
  const r = await sendOk(p, message(topic, 'R', 'fail me', { keys: ['dlq-key'] }));
  const inbox = [];
  // A new group's %RETRY% topic only exists after its first heartbeat (as with RocketMQ), and
  // ali-ons learns routes every 30 s by default: poll every second so the retry queue is
  // pulled as soon as it exists and the gap below measures the delay level alone.
  await consumer(s.namesrv, {
    group, topic, inbox, maxReconsumeTimes: 1, pollNameServerInteval: 1000,
    behaviour: () => { throw new Error('consumer says no'); },
  });
  await waitFor('delivery and one redelivery', 45000, () => inbox.length >= 2, () => JSON.stringify(inbox));

  await t.test('the redelivery: same body on the original topic, reconsumeTimes 1, after delay level 3 (10 s)', () => {
    assert.deepEqual(inbox.map(g => g.body), ['fail me', 'fail me']);
    assert.deepEqual(inbox.map(g => g.topic), [topic, topic], 'the retry is shown on the original topic');
    assert.deepEqual(inbox.map(g => g.reconsumeTimes), [0, 1]);
    assert.equal(inbox[1].properties.ORIGIN_MESSAGE_ID, r.msgId, 'retry copy names the original');
    const gap = inbox[1].at - inbox[0].at;
    assert.ok(gap >= 9900, `first retry after delay level 3 (10 s), got ${gap} ms`);
    assert.ok(gap <= 25000, `first retry at delay level 3 (10 s), not level 4 (30 s): got ${gap} ms`);
  });

  await t.test('the dead letter is in %DLQ%<group> (read with Kafka)', async () => {
    const c = kafka(s).consumer({ groupId: uniq('kdlq') });
    await c.connect();
    const recs = [];
    try {
      await c.subscribe({ topics: [dlq], fromBeginning: true });
      await c.run({ eachMessage: async ({ partition, message: m }) => { recs.push({ partition, m }); } });
      await waitFor('the DLQ record', 30000, () => recs.length >= 1);
    } finally {
      await c.disconnect();
    }
    assert.equal(recs.length, 1);
    const { partition, m } = recs[0];
    assert.equal(partition, 0, 'one DLQ queue per group');
    assert.equal(Number(m.offset), 0);
    assert.equal(m.value.toString(), 'fail me');
    assert.equal(m.key.toString(), 'dlq-key');
    assert.equal(m.headers.RETRY_TOPIC.toString(), topic);
    assert.equal(m.headers.ORIGIN_MESSAGE_ID.toString(), r.msgId);
    assert.equal(inbox.length, 2, 'no third delivery once dead-lettered');
  });

  await t.test('the dead letter is consumable by an ali-ons consumer (DLQ perm 6, as RocketMQ 4.9.4 creates it)', async () => {
    const dead = [];
    await consumer(s.namesrv, { group: uniq('cg_dlq'), topic: dlq, inbox: dead, name: 'dlq' });
    await waitFor('the message in the DLQ', 30000, () => dead.length >= 1, () => JSON.stringify(dead));
    assert.equal(dead.length, 1);
    const d = dead[0];
    assert.equal(d.topic, dlq);
    assert.deepEqual([d.queueId, d.queueOffset], [0, 0]);
    assert.equal(d.body, 'fail me');
    assert.equal(d.keys, 'dlq-key');
    assert.equal(d.reconsumeTimes, 2, 'reconsumeTimes of the message sent back (1) + 1');
    assert.equal(d.properties.RETRY_TOPIC, topic);
    assert.equal(d.properties.ORIGIN_MESSAGE_ID, r.msgId);
  });
});
