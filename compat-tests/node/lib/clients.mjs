// kafkajs helpers shared by the node tests.
import kafkajs from 'kafkajs'
import { unique, waitFor } from './gateway.mjs'

const { Kafka, logLevel } = kafkajs

export function makeKafka (gw, extra = {}) {
  return new Kafka({
    clientId: 'compat-node',
    brokers: [gw.bootstrap],
    logLevel: logLevel.NOTHING,
    retry: { retries: 5, initialRetryTime: 100 },
    ...extra
  })
}

export async function withAdmin (kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

export async function createTopic (kafka, topic, numPartitions = 1, configEntries = []) {
  await withAdmin(kafka, async admin => {
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions, replicationFactor: 1, configEntries }],
      waitForLeaders: true
    })
    if (created !== true) throw new Error(`createTopics(${topic}) returned ${created}`)
  })
}

export function toRecord (partition, message) {
  const headers = {}
  for (const [k, v] of Object.entries(message.headers || {})) {
    headers[k] = Array.isArray(v) ? v.map(x => x.toString()) : (v === null ? null : v.toString())
  }
  return {
    partition,
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString(),
    value: message.value === null ? null : message.value.toString(),
    headers,
    timestamp: message.timestamp
  }
}

// Consumes `topic` from the beginning with a throw-away group until `count`
// records arrived; returns them in arrival order.
export async function consumeAll (kafka, topic, count, { timeoutMs = 30_000, consumerConfig = {} } = {}) {
  const consumer = kafka.consumer({ groupId: unique('reader'), maxWaitTimeInMs: 200, ...consumerConfig })
  const got = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => { got.push(toRecord(partition, message)) }
    })
    await waitFor(() => got.length >= count, `${count} records from ${topic} (have ${got.length})`, timeoutMs)
  } finally {
    await consumer.disconnect()
  }
  return got
}

export function byPartition (records) {
  const out = {}
  for (const r of records) (out[r.partition] ||= []).push(r)
  return out
}
