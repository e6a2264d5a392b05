// RocketMQ accounts (plain_acl.yml) and Kafka ACLs governing one user through both protocols:
// ali-ons signs with accessKey/secretKey, kafkajs authenticates with SCRAM, and one Kafka ACL
// `User:orders-app ALLOW WRITE/READ TOPIC t` lets both clients of that user use the topic.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import kafkajs from 'kafkajs';
import {
  Server, producer, consumer, message, sendOk, closeAll, waitFor, uniq, countBodies, once, refusedWith,
} from '../lib/harness.mjs';

const servers = [];
after(async () => { await closeAll(); for (const s of servers) await s.stop(); });

const APP = { accessKey: 'orders-app', secretKey: 'orders-secret-1' };
const AUTHORIZER = 'org.apache.kafka.metadata.authorizer.StandardAuthorizer';

async function secured() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rmq-acl-'));
  const file = path.join(dir, 'plain_acl.yml');
  fs.writeFileSync(file, [
    'globalWhiteRemoteAddresses:',
    'accounts:',
    `  - accessKey: ${APP.accessKey}`,
    `    secretKey: ${APP.secretKey}`,
    '    admin: false',
    '    defaultTopicPerm: DENY',
    '    defaultGroupPerm: SUB',
    '',
  ].join('\n'));
  const s = await Server.start([
    'listeners=SASL_PLAINTEXT://127.0.0.1:0',
    `authorizer.class.name=${AUTHORIZER}`,
    'super.users=User:admin',
    'rocketmq.acl.enable=true',
    `rocketmq.acl.file=${file}`,
  ], [
    '--add-scram', 'SCRAM-SHA-512=[name=admin,password=admin-secret]',
    '--add-scram', 'SCRAM-SHA-256=[name=orders-app,password=orders-kafka-secret]',
  ]);
  servers.push(s);
  return s;
}

function kafkaAs(s, mechanism, username, password) {
  return new kafkajs.Kafka({
    clientId: uniq('k'), brokers: [s.kafka], logLevel: kafkajs.logLevel.NOTHING,
    sasl: { mechanism, username, password }, retry: { retries: 2 },
  });
}

test('one user, one ACL, both protocols', async () => {
  const s = await secured();
  const admin = kafkaAs(s, 'scram-sha-512', 'admin', 'admin-secret').admin();
  await admin.connect();
  const allowed = uniq('orders');
  const other = uniq('payments');
  await admin.createTopics({ topics: [{ topic: allowed, numPartitions: 2 }, { topic: other, numPartitions: 2 }], waitForLeaders: true });
  const R = kafkajs.AclResourceTypes; const O = kafkajs.AclOperationTypes;
  const P = kafkajs.AclPermissionTypes; const PT = kafkajs.ResourcePatternTypes;
  const acl = (operation, resourceType = R.TOPIC, resourceName = allowed) => ({
    resourceType, resourceName, resourcePatternType: PT.LITERAL, principal: 'User:orders-app',
    host: '*', operation, permissionType: P.ALLOW,
  });
  await admin.createAcls({ acl: [acl(O.WRITE), acl(O.READ)] });
  const listed = await admin.describeAcls({
    resourceType: R.TOPIC, resourceName: allowed, resourcePatternType: PT.LITERAL,
    operation: O.ANY, permissionType: P.ANY,
  });
  assert.deepEqual(listed.resources.map(r => [r.resourceName, r.acls.map(a => a.operation).sort()]),
    [[allowed, [O.READ, O.WRITE].sort()]]);
  await admin.disconnect();

  // RocketMQ: the account's default topic permission is DENY; the Kafka ALLOWs open the topic.
  const p = await producer(s.namesrv, APP);
  const bodies = [];
  for (let i = 0; i < 6; i++) {
    bodies.push(`o-${i}`);
    await sendOk(p, message(allowed, 'TagA', `o-${i}`));
  }
  const inbox = [];
  await consumer(s.namesrv, { group: uniq('cg'), topic: allowed, inbox, ...APP });
  await waitFor('all 6', 30000, () => inbox.length >= 6, () => JSON.stringify(inbox.map(g => g.body)));
  assert.deepEqual(countBodies(inbox), once(bodies));

  // Without an ACL the default permission refuses, with 4.9.4's remark.
  await refusedWith(s, `No default permission for topic:${other}`, p.send(message(other, 'TagA', 'nope')));

  // A wrong secret fails the signature check.
  const bad = await producer(s.namesrv, { accessKey: APP.accessKey, secretKey: 'not-the-secret' });
  await refusedWith(s, 'Check signature failed for accessKey=orders-app', bad.send(message(allowed, 'TagA', 'x')));

  // Kafka: the same principal over SCRAM-SHA-256, under the same ACL.
  const kp = kafkaAs(s, 'scram-sha-256', 'orders-app', 'orders-kafka-secret').producer();
  await kp.connect();
  const [r] = await kp.send({ topic: allowed, messages: [{ value: 'from-kafka' }] });
  assert.equal(r.errorCode, 0);
  await assert.rejects(kp.send({ topic: other, messages: [{ value: 'x' }] }),
    e => (e.cause && e.cause.type) === 'TOPIC_AUTHORIZATION_FAILED');
  await kp.disconnect();

  // Nothing refused was stored: `other` is empty, `allowed` has 6 + 1 records.
  const kadmin = kafkaAs(s, 'scram-sha-512', 'admin', 'admin-secret').admin();
  await kadmin.connect();
  const ends = async t => (await kadmin.fetchTopicOffsets(t)).reduce((n, x) => n + Number(x.high), 0);
  assert.equal(await ends(other), 0);
  assert.equal(await ends(allowed), 7);
  await kadmin.disconnect();
});
