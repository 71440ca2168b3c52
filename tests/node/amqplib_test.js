// tests/node/amqplib_test.js: amqplib (the Node.js client) against the broker at
// WARREN_AMQP_URL, as a Node user writes it: work queues with confirms and prefetch, pub/sub,
// topic and headers routing, RPC over direct reply-to, requeues, basic.get, returns, channel
// errors that leave the connection usable, and consumers cancelled by the broker.
// Run by tests/integration/test_amqplib.py (node --test); passes against RabbitMQ 3.10 too.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const amqp = require('amqplib');

const URL = process.env.WARREN_AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/';
const PREFIX = `amqplib.${process.pid}.`;
const name = (s) => PREFIX + s;

let connection;

test.before(async () => {
  connection = await amqp.connect(URL);
});

test.after(async () => {
  if (connection) await connection.close();
});

// Resolves with the first `count` messages a consumer on `queue` receives (acked).
function collect(channel, queue, count, options = {}) {
  return new Promise((resolve, reject) => {
    const got = [];
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${count} from ${queue}`)), 10000);
    channel.consume(queue, (msg) => {
      if (msg === null) return;
      got.push(msg);
      if (!options.noAck) channel.ack(msg);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    }, options).catch(reject);
  });
}

test('a work queue: persistent messages confirmed, consumed in order with prefetch', async () => {
  const channel = await connection.createConfirmChannel();
  const queue = name('work');
  await channel.assertQueue(queue, { durable: true });
  for (let i = 0; i < 200; i++) channel.sendToQueue(queue, Buffer.from(`task ${i}`), { persistent: true });
  await channel.waitForConfirms();
  const q = await channel.checkQueue(queue);
  assert.equal(q.messageCount, 200);
  await channel.prefetch(10);
  const got = await collect(channel, queue, 200);
  assert.deepEqual(got.map((m) => m.content.toString()), [...Array(200).keys()].map((i) => `task ${i}`));
  assert.equal(got[0].properties.deliveryMode, 2);
  await channel.deleteQueue(queue);
  await channel.close();
});

test('pub/sub: a fanout exchange copies to every bound server-named queue', async () => {
  const channel = await connection.createChannel();
  const exchange = name('logs');
  await channel.assertExchange(exchange, 'fanout', { durable: false });
  const a = await channel.assertQueue('', { exclusive: true });
  const b = await channel.assertQueue('', { exclusive: true });
  assert.match(a.queue, /^amq\.gen-/);
  await channel.bindQueue(a.queue, exchange, '');
  await channel.bindQueue(b.queue, exchange, '');
  channel.publish(exchange, 'ignored', Buffer.from('hello all'));
  const [ga, gb] = await Promise.all([collect(channel, a.queue, 1), collect(channel, b.queue, 1)]);
  assert.equal(ga[0].content.toString(), 'hello all');
  assert.equal(gb[0].content.toString(), 'hello all');
  await channel.deleteExchange(exchange);
  await channel.close();
});

test('topic and headers exchanges route as RabbitMQ does', async () => {
  const channel = await connection.createChannel();
  const topic = name('topic');
  const headers = name('headers');
  await channel.assertExchange(topic, 'topic', { autoDelete: true });
  await channel.assertExchange(headers, 'headers', { autoDelete: true });
  const tq = (await channel.assertQueue('', { exclusive: true })).queue;
  const hq = (await channel.assertQueue('', { exclusive: true })).queue;
  await channel.bindQueue(tq, topic, '*.error.#');
  await channel.bindQueue(hq, headers, '', { 'x-match': 'all', kind: 'audit', level: 3 });
  for (const key of ['app.error', 'app.error.disk.full', 'app.info', 'error.app']) {
    channel.publish(topic, key, Buffer.from(key));
  }
  channel.publish(headers, '', Buffer.from('match'), { headers: { kind: 'audit', level: 3, extra: true } });
  channel.publish(headers, '', Buffer.from('partial'), { headers: { kind: 'audit', level: 4 } });
  const t = await collect(channel, tq, 2);
  assert.deepEqual(t.map((m) => m.content.toString()), ['app.error', 'app.error.disk.full']);
  const h = await collect(channel, hq, 1);
  assert.equal(h[0].content.toString(), 'match');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await channel.checkQueue(tq)).messageCount, 0);
  assert.equal((await channel.checkQueue(hq)).messageCount, 0);
  await channel.close();
});

test('RPC over direct reply-to', async () => {
  const server = await connection.createChannel();
  const rpcQueue = name('rpc');
  await server.assertQueue(rpcQueue, { exclusive: true });
  await server.consume(rpcQueue, (msg) => {
    const n = parseInt(msg.content.toString(), 10);
    server.sendToQueue(msg.properties.replyTo, Buffer.from(String(n * n)),
      { correlationId: msg.properties.correlationId });
    server.ack(msg);
  });
  const client = await connection.createChannel();
  const answers = new Map();
  const waiting = new Map();
  await client.consume('amq.rabbitmq.reply-to', (msg) => {
    answers.set(msg.properties.correlationId, msg.content.toString());
    const done = waiting.get(msg.properties.correlationId);
    if (done) done();
  }, { noAck: true });
  const calls = [];
  for (let i = 1; i <= 20; i++) {
    const id = `call-${i}`;
    calls.push(new Promise((resolve) => waiting.set(id, resolve)));
    client.sendToQueue(rpcQueue, Buffer.from(String(i)), { replyTo: 'amq.rabbitmq.reply-to', correlationId: id });
  }
  await Promise.race([Promise.all(calls), new Promise((_, rej) => setTimeout(() => rej(new Error('rpc timeout')), 10000).unref())]);
  for (let i = 1; i <= 20; i++) assert.equal(answers.get(`call-${i}`), String(i * i));
  await client.close();
  await server.close();
});

test('a nack with requeue redelivers; basic.get sees empty and full queues', async () => {
  const channel = await connection.createChannel();
  const queue = name('requeue');
  await channel.assertQueue(queue, { autoDelete: false, durable: false });
  assert.equal(await channel.get(queue), false);
  channel.sendToQueue(queue, Buffer.from('again'));
  let msg = false;
  for (let i = 0; i < 50 && msg === false; i++) {
    msg = await channel.get(queue);
    if (msg === false) await new Promise((r) => setTimeout(r, 20));
  }
  assert.notEqual(msg, false);
  assert.equal(msg.fields.redelivered, false);
  channel.nack(msg, false, true);
  const again = await channel.get(queue, { noAck: true });
  assert.equal(again.content.toString(), 'again');
  assert.equal(again.fields.redelivered, true);
  await channel.deleteQueue(queue);
  await channel.close();
});

test('a mandatory message nobody can take comes back as basic.return', async () => {
  const channel = await connection.createChannel();
  const returned = new Promise((resolve) => channel.once('return', resolve));
  channel.publish('amq.direct', name('nobody-bound'), Buffer.from('lost?'), { mandatory: true });
  const msg = await returned;
  assert.equal(msg.fields.replyCode, 312);
  assert.equal(msg.fields.replyText, 'NO_ROUTE');
  assert.equal(msg.content.toString(), 'lost?');
  await channel.close();
});

test('a channel error (404, 406) closes the channel only; the connection goes on', async () => {
  const channel = await connection.createChannel();
  const closed = new Promise((resolve) => channel.once('error', resolve));
  await assert.rejects(channel.checkQueue(name('missing')), (err) => err.code === 404);
  assert.equal((await closed).code, 404);
  const next = await connection.createChannel();
  await next.assertQueue(name('after-error'), { exclusive: true, durable: false });
  const third = await connection.createChannel();
  const closed3 = new Promise((resolve) => third.once('error', resolve));
  await assert.rejects(third.assertQueue(name('after-error'), { exclusive: true, durable: false,
    arguments: { 'x-max-length': 5 } }));
  assert.equal((await closed3).code, 406);
  assert.equal((await next.checkQueue(name('after-error'))).messageCount, 0);
  await next.close();
});

test('an unknown exchange type closes the connection with 503', async () => {
  const other = await amqp.connect(URL);
  const closed = new Promise((resolve) => other.once('error', resolve));
  const channel = await other.createChannel();
  channel.on('error', () => {});
  await assert.rejects(channel.assertExchange(name('bad'), 'no-such-type'));
  assert.equal((await closed).code, 503);
});

test('deleting a queue cancels its consumers (consumer_cancel_notify)', async () => {
  const channel = await connection.createChannel();
  const queue = name('cancelled');
  await channel.assertQueue(queue);
  const cancelled = new Promise((resolve) => {
    channel.consume(queue, (msg) => { if (msg === null) resolve(true); });
  });
  const other = await connection.createChannel();
  await other.deleteQueue(queue);
  assert.equal(await Promise.race([cancelled, new Promise((r) => setTimeout(() => r(false), 5000).unref())]), true);
  await other.close();
  await channel.close();
});
