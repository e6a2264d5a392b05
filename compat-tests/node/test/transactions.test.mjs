// kafkajs transactions against the gateway: commit visible, abort hidden from read_committed
// consumers (and visible to readUncommitted ones), offsets sent with a transaction applied
// only when it commits, and a second producer of the same transactional id fencing the first.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { errorType, unique, withGateway } from '../lib/gateway.mjs'
import { consumeAll, createTopic, makeKafka, withAdmin } from '../lib/clients.mjs'

async function txnProducer (kafka, transactionalId) {
  const p = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })
  await p.connect()
  return p
}

async function committedOffset (kafka, groupId, topic) {
  return withAdmin(kafka, async admin => {
    const res = await admin.fetchOffsets({ groupId, topics: [topic] })
    return res[0].partitions.find(p => p.partition === 0).offset
  })
}

describe('kafkajs transactions', () => {
  it('commit visible, abort hidden, offsets only on commit', { timeout: 90_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw)
      const topic = unique('node-txn')
      await createTopic(kafka, topic, 1)
      const producer = await txnProducer(kafka, unique('node-tid'))
      const group = unique('node-txn-group')
      try {
        let t = await producer.transaction()
        await t.send({ topic, messages: [{ partition: 0, key: 'k', value: 'a' }, { partition: 0, key: 'k', value: 'b' }] })
        await t.commit()
        t = await producer.transaction()
        await t.send({ topic, messages: [{ partition: 0, key: 'k', value: 'x' }] })
        await t.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: '2' }] }] })
        await t.abort()
        assert.equal(await committedOffset(kafka, group, topic), '-1', 'offsets of an aborted transaction applied')
        t = await producer.transaction()
        await t.send({ topic, messages: [{ partition: 0, key: 'k', value: 'c' }] })
        await t.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions: [{ partition: 0, offset: '6' }] }] })
        assert.equal(await committedOffset(kafka, group, topic), '-1', 'offsets visible before the commit')
        await t.commit()
        assert.equal(await committedOffset(kafka, group, topic), '6')
      } finally {
        await producer.disconnect()
      }
      // a b @0-1, COMMIT @2, x @3, ABORT @4, c @5, COMMIT @6
      const committed = await consumeAll(kafka, topic, 3)
      assert.deepEqual(committed.map(r => [r.offset, r.value]), [[0, 'a'], [1, 'b'], [5, 'c']])
      const all = await consumeAll(kafka, topic, 4, { consumerConfig: { readUncommitted: true } })
      assert.deepEqual(all.map(r => [r.offset, r.value]), [[0, 'a'], [1, 'b'], [3, 'x'], [5, 'c']])
    }))

  it('a second producer of the transactional id fences the first', { timeout: 90_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw, { retry: { retries: 1, initialRetryTime: 100 } })
      const topic = unique('node-fence')
      await createTopic(kafka, topic, 1)
      const id = unique('node-tid')
      const first = await txnProducer(kafka, id)
      let second
      try {
        const t1 = await first.transaction()
        await t1.send({ topic, messages: [{ partition: 0, value: 'zombie' }] })
        // Initialising the second instance (on connect) aborts the first one's transaction
        // and bumps the epoch.
        second = await txnProducer(kafka, id)
        const t2 = await second.transaction()
        let err
        try {
          await t1.commit()
        } catch (e) {
          err = e
        }
        assert.ok(err, 'the fenced producer committed')
        assert.ok(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'INVALID_TXN_STATE'].includes(errorType(err)),
          `unexpected ${errorType(err)}: ${err && err.message}`)
        await t2.send({ topic, messages: [{ partition: 0, value: 'fresh' }] })
        await t2.commit()
      } finally {
        await first.disconnect()
        if (second) await second.disconnect()
      }
      const got = await consumeAll(kafka, topic, 1)
      assert.deepEqual(got.map(r => [r.offset, r.value]), [[2, 'fresh']])
      const raw = await consumeAll(kafka, topic, 2, { consumerConfig: { readUncommitted: true } })
      assert.deepEqual(raw.map(r => [r.offset, r.value]), [[0, 'zombie'], [2, 'fresh']])
    }))
})
