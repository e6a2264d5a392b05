// kafkajs consumer group: two members split the partitions, commit, and a new
// member resumes exactly at the committed offsets.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import kafkajs from 'kafkajs'
import { unique, waitFor, withGateway } from '../lib/gateway.mjs'
import { createTopic, makeKafka, toRecord, withAdmin } from '../lib/clients.mjs'

const { Partitioners } = kafkajs
const PARTITIONS = 4

class Member {
  constructor (kafka, groupId, topic) {
    this.topic = topic
    this.consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
    this.records = []
    this.assignment = null
    this.joins = 0
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      this.joins += 1
      this.assignment = new Set(payload.memberAssignment[topic] || [])
      this.memberId = payload.memberId
    })
  }

  async start () {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => { this.records.push(toRecord(partition, message)) }
    })
    return this
  }

  async commit (offsets) {
    await this.consumer.commitOffsets(Object.entries(offsets).map(([p, o]) => ({ topic: this.topic, partition: Number(p), offset: String(o) })))
  }

  stop () { return this.consumer.disconnect() }
}

const sorted = s => [...s].sort((a, b) => a - b)

describe('kafkajs consumer group', () => {
  it('two members split partitions, commit, and a new member resumes at the commits', { timeout: 120_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw)
      const topic = unique('node-grp')
      const groupId = unique('node-g')
      await createTopic(kafka, topic, PARTITIONS)

      const a = await new Member(kafka, groupId, topic).start()
      const b = await new Member(kafka, groupId, topic).start()
      const members = [a, b]
      try {
        await waitFor(() => a.assignment && b.assignment && a.assignment.size === 2 && b.assignment.size === 2 &&
          sorted(new Set([...a.assignment, ...b.assignment])).join() === '0,1,2,3',
        'two members holding 2 partitions each', 60_000)

        const producer = kafka.producer({ createPartitioner: Partitioners.LegacyPartitioner })
        await producer.connect()
        const messages = []
        for (let i = 0; i < 10; i++) for (let p = 0; p < PARTITIONS; p++) messages.push({ partition: p, key: `k-${p}-${i}`, value: `v-${p}-${i}` })
        await producer.send({ topic, acks: -1, messages })
        await producer.disconnect()

        await waitFor(() => a.records.length + b.records.length >= 40, '40 records consumed by the group', 60_000)
        assert.equal(a.records.length + b.records.length, 40)
        for (const m of members) {
          assert.deepEqual(sorted(new Set(m.records.map(r => r.partition))), sorted(m.assignment))
          for (const p of m.assignment) {
            const recs = m.records.filter(r => r.partition === p)
            assert.deepEqual(recs.map(r => r.offset), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
            assert.deepEqual(recs.map(r => r.key), recs.map(r => `k-${p}-${r.offset}`))
          }
        }
        await a.commit(Object.fromEntries([...a.assignment].map(p => [p, 6])))
        await b.commit(Object.fromEntries([...b.assignment].map(p => [p, 6])))
      } finally {
        for (const m of members) await m.stop()
      }

      await withAdmin(kafka, async admin => {
        const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
        assert.deepEqual(offsets.map(t => [t.topic, t.partitions.map(p => [p.partition, p.offset]).sort()]),
          [[topic, [[0, '6'], [1, '6'], [2, '6'], [3, '6']]]])
      })

      const c = await new Member(kafka, groupId, topic).start()
      try {
        await waitFor(() => c.records.length >= 16, 'the 16 uncommitted records', 60_000)
        assert.deepEqual(sorted(c.assignment), [0, 1, 2, 3])
        const got = c.records.map(r => `${r.partition}:${r.offset}:${r.key}`).sort()
        const want = []
        for (let p = 0; p < PARTITIONS; p++) for (let i = 6; i < 10; i++) want.push(`${p}:${i}:k-${p}-${i}`)
        assert.deepEqual(got, want.sort())
      } finally {
        await c.stop()
      }
    }))
})
