// kafkajs admin client against the gateway.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import kafkajs from 'kafkajs'
import { errorType, unique, waitFor, withGateway } from '../lib/gateway.mjs'
import { createTopic, makeKafka, toRecord, withAdmin } from '../lib/clients.mjs'

const { ConfigResourceTypes, Partitioners } = kafkajs
const DYNAMIC_TOPIC_CONFIG = 1
const DEFAULT_CONFIG = 5

async function rejectsWith (promise, type) {
  let err
  try {
    await promise
  } catch (e) {
    err = e
  }
  assert.ok(err, `expected ${type}, but the call succeeded`)
  assert.equal(errorType(err), type, `expected ${type}, got ${err && err.name}: ${err && err.message}`)
}

async function topicConfigs (admin, topic, configNames) {
  const res = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }]
  })
  assert.equal(res.resources.length, 1)
  const [r] = res.resources
  assert.equal(r.errorCode, 0)
  assert.equal(r.resourceName, topic)
  return Object.fromEntries(r.configEntries.map(e => [e.configName, [e.configValue, e.configSource]]))
}

async function produce (kafka, topic, messages) {
  const producer = kafka.producer({ createPartitioner: Partitioners.LegacyPartitioner })
  await producer.connect()
  try {
    return await producer.send({ topic, acks: -1, messages })
  } finally {
    await producer.disconnect()
  }
}

describe('kafkajs admin', () => {
  it('createTopics, validateOnly, fetchTopicMetadata, createPartitions, deleteTopics', { timeout: 90_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw, { retry: { retries: 1, initialRetryTime: 100 } })
      await withAdmin(kafka, async admin => {
        const topic = unique('node-adm')
        assert.equal(await admin.createTopics({
          topics: [{ topic, numPartitions: 2, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }]
        }), true)
        assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] }), false, 'existing topic reported as created')

        const vo = unique('node-vo')
        assert.equal(await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: vo, numPartitions: 1 }] }), true)
        assert.ok(!(await admin.listTopics()).includes(vo), 'validateOnly created the topic')
        assert.ok((await admin.listTopics()).includes(topic))

        const md = await admin.fetchTopicMetadata({ topics: [topic] })
        assert.equal(md.topics.length, 1)
        assert.equal(md.topics[0].name, topic)
        assert.deepEqual(md.topics[0].partitions.map(p => [p.partitionId, p.leader, p.replicas, p.isr]).sort(),
          [[0, 1, [1], [1]], [1, 1, [1], [1]]])

        await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] })
        await waitFor(async () => (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0].partitions.length === 5,
          'topic grown to 5 partitions')
        await rejectsWith(admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] }), 'INVALID_PARTITIONS')

        await rejectsWith(admin.createTopics({ topics: [{ topic: unique('node-rf'), numPartitions: 1, replicationFactor: 3 }] }),
          'INVALID_REPLICATION_FACTOR')

        await admin.deleteTopics({ topics: [topic] })
        await waitFor(async () => !(await admin.listTopics()).includes(topic), 'deleted topic gone')
        await rejectsWith(admin.deleteTopics({ topics: [unique('node-missing')] }), 'UNKNOWN_TOPIC_OR_PARTITION')
      })
    }))

  it('describeConfigs and alterConfigs', { timeout: 90_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw)
      const topic = unique('node-cfg')
      await createTopic(kafka, topic, 1, [{ name: 'retention.ms', value: '3600000' }])
      await withAdmin(kafka, async admin => {
        const cfg = await topicConfigs(admin, topic, ['retention.ms', 'cleanup.policy', 'max.message.bytes', 'segment.ms'])
        assert.deepEqual(cfg, {
          'retention.ms': ['3600000', DYNAMIC_TOPIC_CONFIG],
          'cleanup.policy': ['delete', DEFAULT_CONFIG],
          'max.message.bytes': ['1048588', DEFAULT_CONFIG],
          'segment.ms': ['604800000', DEFAULT_CONFIG]
        })

        const res = await admin.alterConfigs({
          validateOnly: false,
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'segment.ms', value: '7200000' }] }]
        })
        assert.deepEqual(res.resources.map(r => [r.errorCode, r.resourceName]), [[0, topic]])
        // AlterConfigs replaces the topic's whole dynamic config set
        assert.deepEqual(await topicConfigs(admin, topic, ['retention.ms', 'segment.ms']), {
          'retention.ms': ['604800000', DEFAULT_CONFIG],
          'segment.ms': ['7200000', DYNAMIC_TOPIC_CONFIG]
        })

        const vo = await admin.alterConfigs({
          validateOnly: true,
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'segment.ms', value: '1000' }] }]
        })
        assert.deepEqual(vo.resources.map(r => r.errorCode), [0])
        assert.deepEqual((await topicConfigs(admin, topic, ['segment.ms']))['segment.ms'], ['7200000', DYNAMIC_TOPIC_CONFIG])

        await rejectsWith(admin.alterConfigs({
          validateOnly: false,
          resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'segment.ms', value: 'often' }] }]
        }), 'INVALID_CONFIG')

        const broker = await admin.describeConfigs({
          includeSynonyms: false,
          resources: [{ type: ConfigResourceTypes.BROKER, name: '1', configNames: ['message.max.bytes'] }]
        })
        assert.deepEqual(broker.resources[0].configEntries.map(e => [e.configName, e.configValue]), [['message.max.bytes', '1048588']])
      })
    }))

  it('fetchTopicOffsets and fetchTopicOffsetsByTimestamp', { timeout: 90_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw)
      const topic = unique('node-ts')
      await createTopic(kafka, topic, 2)
      const t0 = Date.now() - 600_000
      const stamps = [0, 1000, 2000, 2000, 9000, 3000]
      await produce(kafka, topic, stamps.map((s, i) => ({ partition: 0, key: `k${i}`, value: `v${i}`, timestamp: String(t0 + s) })))
      await withAdmin(kafka, async admin => {
        const offs = await admin.fetchTopicOffsets(topic)
        assert.deepEqual(offs.map(o => [o.partition, o.low, o.high, o.offset]).sort(),
          [[0, '0', '6', '6'], [1, '0', '0', '0']])
        const at = async ts => Object.fromEntries((await admin.fetchTopicOffsetsByTimestamp(topic, ts)).map(o => [o.partition, o.offset]))
        assert.deepEqual(await at(t0), { 0: '0', 1: '0' })
        assert.deepEqual(await at(t0 + 1500), { 0: '2', 1: '0' })
        assert.deepEqual(await at(t0 + 2500), { 0: '4', 1: '0' })
        // no record at or after the timestamp: kafkajs substitutes the high watermark for -1
        assert.deepEqual(await at(t0 + 9001), { 0: '6', 1: '0' })
      })
    }))

  it('groups: describeGroups, listGroups, fetchOffsets, resetOffsets, setOffsets, deleteGroups', { timeout: 120_000 }, () =>
    withGateway(async gw => {
      const kafka = makeKafka(gw, { retry: { retries: 1, initialRetryTime: 100 } })
      const topic = unique('node-gadm')
      const groupId = unique('node-gadm-g')
      await createTopic(kafka, topic, 2)
      const messages = []
      for (let i = 0; i < 5; i++) for (const p of [0, 1]) messages.push({ partition: p, key: `k${p}${i}`, value: `v${p}${i}` })
      await produce(kafka, topic, messages)

      const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
      const got = []
      let memberId
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => { memberId = payload.memberId })
      await consumer.connect()
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({ autoCommit: false, eachMessage: async ({ partition, message }) => { got.push(toRecord(partition, message)) } })
      await withAdmin(kafka, async admin => {
        try {
          await waitFor(() => got.length >= 10, 'all 10 records consumed')
          await consumer.commitOffsets([{ topic, partition: 0, offset: '3' }, { topic, partition: 1, offset: '5' }])

          const { groups } = await admin.listGroups()
          assert.deepEqual(groups.filter(g => g.groupId === groupId), [{ groupId, protocolType: 'consumer' }])

          const desc = await admin.describeGroups([groupId])
          assert.equal(desc.groups.length, 1)
          const [g] = desc.groups
          assert.deepEqual([g.groupId, g.errorCode, g.state, g.protocolType], [groupId, 0, 'Stable', 'consumer'])
          assert.equal(g.members.length, 1)
          assert.equal(g.members[0].memberId, memberId)
          assert.equal(g.members[0].clientId, 'compat-node')

          await rejectsWith(admin.deleteGroups([groupId]), 'NON_EMPTY_GROUP')
          // offsets of a group with a running member can't be reset
          await assert.rejects(admin.resetOffsets({ groupId, topic, earliest: true }), /no running instances/)
        } finally {
          await consumer.disconnect()
        }

        const fetchOffsets = async () => {
          const res = await admin.fetchOffsets({ groupId, topics: [topic] })
          return Object.fromEntries(res[0].partitions.map(p => [p.partition, p.offset]))
        }
        assert.deepEqual(await fetchOffsets(), { 0: '3', 1: '5' })
        await waitFor(async () => (await admin.describeGroups([groupId])).groups[0].state === 'Empty', 'group empty')

        // kafkajs commits the logical offsets (-2 earliest, -1 latest) and resolves them on demand
        await admin.resetOffsets({ groupId, topic, earliest: true })
        assert.deepEqual(await fetchOffsets(), { 0: '-2', 1: '-2' })
        const resolved = await admin.fetchOffsets({ groupId, topics: [topic], resolveOffsets: true })
        assert.deepEqual(resolved[0].partitions.map(p => [p.partition, p.offset]).sort(), [[0, '0'], [1, '0']])
        assert.deepEqual(await fetchOffsets(), { 0: '0', 1: '0' })
        await admin.resetOffsets({ groupId, topic })
        assert.deepEqual(await fetchOffsets(), { 0: '-1', 1: '-1' })
        await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '2' }, { partition: 1, offset: '4' }] })
        assert.deepEqual(await fetchOffsets(), { 0: '2', 1: '4' })

        const res = await admin.deleteGroups([groupId])
        assert.deepEqual(res.map(r => [r.groupId, r.errorCode]), [[groupId, 0]])
        assert.ok(!(await admin.listGroups()).groups.some(g => g.groupId === groupId))
        assert.deepEqual(await fetchOffsets(), { 0: '-1', 1: '-1' })
        await rejectsWith(admin.deleteGroups([unique('node-nogroup')]), 'GROUP_ID_NOT_FOUND')
      })
    }))
})
