// ali-ons producer sends (sync; ali-ons has no async/oneway/batch API) and a push consumer,
// with the Kafka view of the same messages (kafkajs) and the reverse direction.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, producer, consumer, message, sendOk, closeAll, waitFor, uniq, countBodies, once,
  BROKER_NAME, kafka, createTopic,
} from '../lib/harness.mjs';

const servers = [];
after(async () => { await closeAll(); for (const s of servers) await s.stop(); });

async function server() {
  const s = await Server.start();
  servers.push(s);
  return s;
}

/** Reads the record at (topic, partition, offset) with kafkajs. */
async function kafkaReadAt(s, topic, partition, offset) {
  const c = kafka(s).consumer({ groupId: uniq('kreader') });
  await c.connect();
  let got = null;
  try {
    await c.subscribe({ topics: [topic], fromBeginning: true });
    await c.run({
      eachMessage: async ({ partition: p, message: m }) => {
        if (p === partition && Number(m.offset) === offset) got = m;
      },
    });
    await waitFor(`Kafka record ${topic}/${partition}@${offset}`, 30000, () => got !== null);
  } finally {
    await c.disconnect();
  }
  return got;
}

test('sync sends are consumed exactly once at their send positions, and read by Kafka', async () => {
  const s = await server();
  const topic = uniq('ons_send');
  await createTopic(s, topic, 4);
  const p = await producer(s.namesrv);
  const sent = [];
  for (let i = 0; i < 8; i++) {
    const body = `ons-${i}`;
    const r = await sendOk(p, message(topic, i % 2 ? 'TagOdd' : 'TagEven', body, {
      keys: [`key-${i}`, 'shared'], props: { color: 'red', idx: String(i) },
    }));
    assert.equal(r.messageQueue.topic, topic);
    assert.equal(r.messageQueue.brokerName, BROKER_NAME);
    assert.match(r.msgId, /^[0-9A-F]{32}$/, 'offset message id: 32 upper-case hex chars');
    sent.push({ body, r, i });
  }
  const queues = new Set(sent.map(x => x.r.messageQueue.queueId));
  assert.equal(queues.size, 4, '4 partitions = 4 queues, sent to round-robin');

  const inbox = [];
  await consumer(s.namesrv, { group: uniq('cg'), topic, inbox });
  await waitFor('all 8', 30000, () => inbox.length >= 8, () => JSON.stringify(inbox.map(g => g.body)));
  assert.deepEqual(countBodies(inbox), once(sent.map(x => x.body)));
  for (const { body, r, i } of sent) {
    const g = inbox.find(x => x.body === body);
    assert.equal(g.topic, topic);
    assert.deepEqual([g.queueId, g.queueOffset], [r.messageQueue.queueId, r.queueOffset], `${body}: position`);
    assert.equal(g.msgId, r.msgId, `${body}: msgId of the stored message = SendResult msgId`);
    assert.equal(g.tags, i % 2 ? 'TagOdd' : 'TagEven');
    assert.equal(g.keys, `key-${i} shared`);
    assert.equal(g.properties.color, 'red');
    assert.equal(g.properties.idx, String(i));
    assert.equal(g.reconsumeTimes, 0);
  }
  const perQueue = {};
  for (const g of inbox) (perQueue[g.queueId] ||= []).push(g.queueOffset);
  for (const [q, offs] of Object.entries(perQueue)) {
    assert.deepEqual([...offs].sort((a, b) => a - b), offs.map((_, k) => k), `queue ${q}: offsets 0..n`);
  }

  const { body, r } = sent[3];
  const k = await kafkaReadAt(s, topic, r.messageQueue.queueId, r.queueOffset);
  const g = inbox.find(x => x.body === body);
  assert.equal(k.value.toString(), body, 'value = body');
  assert.equal(k.key.toString(), 'key-3', 'key = first KEYS entry');
  assert.equal(k.headers.TAGS.toString(), 'TagOdd');
  assert.equal(k.headers.KEYS.toString(), 'key-3 shared');
  assert.equal(k.headers.color.toString(), 'red');
  assert.equal(Number(k.timestamp), g.bornTimestamp, 'timestamp = bornTimestamp');
});

test('Kafka records are consumed by ali-ons with tag filtering, positions, keys and properties', async () => {
  const s = await server();
  const topic = uniq('kafka_to_ons');
  await createTopic(s, topic, 4);
  const kp = kafka(s).producer();
  await kp.connect();
  const ts = 1700000000456;
  const sent = [];
  for (const [i, tag] of ['TagK', 'TagOther', 'TagK', 'TagK'].entries()) {
    const [res] = await kp.send({
      topic, acks: -1,
      messages: [{ partition: 1, key: `kk-${i}`, value: `kafka-${i}`, timestamp: String(ts + i), headers: { TAGS: tag, h1: `v${i}` } }],
    });
    assert.equal(res.partition, 1);
    sent.push({ value: `kafka-${i}`, key: `kk-${i}`, offset: Number(res.baseOffset), tag, ts: ts + i, i });
  }
  await kp.disconnect();

  const inbox = [];
  await consumer(s.namesrv, { group: uniq('cg'), topic, expr: 'TagK', inbox });
  // the last TagK record is behind the TagOther one in the same queue
  await waitFor('the last TagK record', 30000, () => inbox.some(g => g.body === 'kafka-3'), () => JSON.stringify(inbox));
  assert.deepEqual(inbox.map(g => g.body), ['kafka-0', 'kafka-2', 'kafka-3'], 'TagOther filtered out, queue order kept');
  for (const g of inbox) {
    const x = sent.find(y => y.value === g.body);
    assert.equal(g.topic, topic);
    assert.deepEqual([g.queueId, g.queueOffset], [1, x.offset]);
    assert.equal(g.tags, 'TagK');
    assert.equal(g.keys, x.key, 'Kafka key -> KEYS');
    assert.equal(g.properties.h1, `v${x.i}`, 'header -> property');
    assert.equal(g.bornTimestamp, x.ts, 'record timestamp -> bornTimestamp');
  }
});
