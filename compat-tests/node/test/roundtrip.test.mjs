// kafkajs produce/consume: exact round trip, compression, idempotent producer.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import kafkajs from 'kafkajs'
import SnappyCodec from 'kafkajs-snappy'
import { unique, withGateway } from '../lib/gateway.mjs'
import { byPartition, consumeAll, createTopic, makeKafka, withAdmin } from '../lib/clients.mjs'

const { CompressionTypes, CompressionCodecs, Partitioners } = kafkajs
CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

const PARTITIONS = 3
const PER_PARTITION = 25

function expectedMessages (base) {
  const msgs = []
  for (let i = 0; i < PER_PARTITION; i++) {
    for (let p = 0; p < PARTITIONS; p++) {
      const headers = i % 3 === 2 ? {} : { seq: String(i), part: String(p), dup: ['first', 'second'] }
      msgs.push({ partition: p, key: `key-${p}-${i}`, value: `value ${p}/${i} ✓`, headers, timestamp: String(base + i * 10 + p) })
    }
  }
  msgs.push({ partition: 0, key: null, value: 'no key', headers: {}, timestamp: String(base + 5000) })
  msgs.push({ partition: 1, key: 'tombstone', value: null, headers: {}, timestamp: String(base + 5001) })
  return msgs
}

async function produce (kafka, topic, msgs, sendOpts = {}, producerOpts = {}) {
  const producer = kafka.producer({ createPartitioner: Partitioners.LegacyPartitioner, ...producerOpts })
  await producer.connect()
  try {
    return await producer.send({
      topic,
      acks: -1,
      ...sendOpts,
      messages: msgs.map(m => ({ partition: m.partition, key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp }))
    })
  } finally {
    await producer.disconnect()
  }
}

function assertExact (records, msgs) {
  const expectedByPartition = byPartition(msgs.map(m => ({ ...m })))
  const got = byPartition(records)
  assert.deepEqual(Object.keys(got).sort(), Object.keys(expectedByPartition).sort())
  for (const [p, exp] of Object.entries(expectedByPartition)) {
    const recs = got[p]
    assert.deepEqual(recs.map(r => r.offset), exp.map((_, i) => i), `partition ${p}: offsets in order, exactly once`)
    recs.forEach((r, i) => {
      const m = exp[i]
      assert.deepEqual({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp },
        { key: m.key, value: m.value, headers: m.headers, timestamp: m.timestamp }, `partition ${p} offset ${i}`)
    })
  }
}

async function highWatermarks (kafka, topic) {
  return withAdmin(kafka, async admin => {
    const offs = await admin.fetchTopicOffsets(topic)
    return Object.fromEntries(offs.map(o => [o.partition, [Number(o.low), Number(o.high)]]))
  })
}

describe('kafkajs round trip', () => {
  it('keys, values, headers, timestamps and per-partition order are exact', { timeout: 90_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw)
      const topic = unique('node-rt')
      await createTopic(kafka, topic, PARTITIONS)
      const msgs = expectedMessages(Date.now() - 60_000)
      const meta = await produce(kafka, topic, msgs)
      assert.deepEqual(meta.map(m => [m.partition, m.errorCode, m.baseOffset]).sort(),
        [[0, 0, '0'], [1, 0, '0'], [2, 0, '0']])
      const records = await consumeAll(kafka, topic, msgs.length)
      assert.equal(records.length, msgs.length)
      assertExact(records, msgs)
      assert.deepEqual(await highWatermarks(kafka, topic), { 0: [0, 26], 1: [0, 26], 2: [0, 25] })
    }))

  for (const [name, codec] of [['gzip', CompressionTypes.GZIP], ['snappy', CompressionTypes.Snappy]]) {
    it(`${name} compressed batches round-trip exactly`, { timeout: 90_000 }, () =>
      withGateway(async gw => {
        const kafka = makeKafka(gw)
        const topic = unique(`node-${name}`)
        await createTopic(kafka, topic, PARTITIONS)
        const msgs = expectedMessages(Date.now() - 60_000).map(m => m.value === null ? m : { ...m, value: m.value.repeat(20) })
        const meta = await produce(kafka, topic, msgs, { compression: codec })
        assert.ok(meta.every(m => m.errorCode === 0))
        const records = await consumeAll(kafka, topic, msgs.length)
        assertExact(records, msgs)
      }))
  }

  it('idempotent producer: N sends, exactly N records, in order, no duplicates', { timeout: 90_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw)
      const topic = unique('node-idem')
      await createTopic(kafka, topic, 2)
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.LegacyPartitioner })
      await producer.connect()
      const n = 1000
      try {
        for (let start = 0; start < n; start += 100) {
          const messages = []
          for (let i = start; i < start + 100; i++) messages.push({ partition: i % 2, key: `k${i}`, value: `v${i}` })
          const meta = await producer.send({ topic, acks: -1, messages })
          assert.deepEqual(meta.map(m => [m.partition, m.errorCode, Number(m.baseOffset)]).sort(),
            [[0, 0, start / 2], [1, 0, start / 2]])
        }
      } finally {
        await producer.disconnect()
      }
      const records = await consumeAll(kafka, topic, n)
      assert.equal(records.length, n)
      assert.equal(new Set(records.map(r => r.key)).size, n, 'duplicates consumed')
      const parts = byPartition(records)
      for (const p of [0, 1]) {
        assert.deepEqual(parts[p].map(r => r.key), Array.from({ length: n / 2 }, (_, j) => `k${2 * j + p}`))
        assert.deepEqual(parts[p].map(r => r.offset), Array.from({ length: n / 2 }, (_, j) => j))
      }
      assert.deepEqual(await highWatermarks(kafka, topic), { 0: [0, n / 2], 1: [0, n / 2] })
    }))
})
