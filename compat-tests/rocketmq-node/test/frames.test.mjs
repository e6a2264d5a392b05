// Malformed frames on the name-server and broker ports leave the server serving.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Server, producer, consumer, message, sendOk, closeAll, waitFor, uniq, poke, frame, parseFrames, createTopic,
} from '../lib/harness.mjs';

let s;
after(async () => { await closeAll(); if (s) await s.stop(); });

test('garbage, 0x7fffffff length, truncated and bad headers: connections closed, server keeps serving', async () => {
  s = await Server.start();
  for (const [name, addr] of [['namesrv', s.namesrv], ['broker', s.broker]]) {
    let r = await poke(addr, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01garbage'));
    assert.ok(r.closed, `${name}: HTTP garbage closes the connection`);
    const huge = Buffer.concat([Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 10]), Buffer.from('{"code":10')]);
    r = await poke(addr, huge, { halfClose: false });
    assert.ok(r.closed, `${name}: 0x7fffffff length prefix closes the connection within 5 s`);
    const trunc = Buffer.concat([Buffer.from([0, 0, 0, 200, 0, 0, 0, 150]), Buffer.from('{"code":105,"opaque"')]);
    r = await poke(addr, trunc);
    assert.ok(r.closed, `${name}: truncated header closes the connection`);
    const over = Buffer.concat([Buffer.from([0, 0, 0, 12, 0, 0, 3, 232]), Buffer.from('{"a":1}\0')]);
    r = await poke(addr, over, { halfClose: false });
    assert.ok(r.closed, `${name}: header length past the frame closes the connection`);
    r = await poke(addr, frame('{not json'));
    assert.ok(r.closed, `${name}: unparsable header closes the connection`);
    assert.ok(s.running, `${name}: process alive`);
  }

  const route = await poke(s.namesrv, frame(JSON.stringify({
    code: 105, extFields: { topic: 'no_such_topic_node' }, flag: 0, language: 'JAVA', opaque: 31337,
    serializeTypeCurrentRPC: 'JSON', version: 401,
  })));
  const frames = parseFrames(route.data);
  assert.equal(frames.length, 1);
  assert.equal(frames[0].code, 17, 'TOPIC_NOT_EXIST');
  assert.equal(frames[0].opaque, 31337);
  assert.equal(frames[0].flag & 1, 1, 'response flag');

  const topic = uniq('ons_after_garbage');
  await createTopic(s, topic, 4);
  const p = await producer(s.namesrv);
  await sendOk(p, message(topic, 'G', 'still alive'));
  const inbox = [];
  await consumer(s.namesrv, { group: uniq('cg'), topic, inbox });
  await waitFor('the message', 30000, () => inbox.length >= 1);
  assert.deepEqual(inbox.map(g => g.body), ['still alive']);
  assert.ok(s.running);
});
