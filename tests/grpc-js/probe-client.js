// Calls the Probe service (test-apps/GrpcOrigin/Protos/probe.proto) with @grpc/grpc-js, which reads
// frames strictly by the gRPC spec: a status must come in trailers or in a trailers-only HEADERS frame
// that ends the stream. Prints one JSON document: what each call saw (status, message, metadata, replies).
//
// usage: node probe-client.js --target HOST:PORT --authority NAME [--ca CA.pem] --proto PROBE.proto --tag PREFIX
'use strict';

const fs = require('fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const args = {};
  for (let i = 2; i < argv.length; i += 2) {
    args[argv[i].replace(/^--/, '')] = argv[i + 1];
  }
  for (const required of ['target', 'authority', 'proto', 'tag']) {
    if (!args[required]) {
      throw new Error(`--${required} is required`);
    }
  }
  return args;
}

const args = parseArgs(process.argv);
const definition = protoLoader.loadSync(args.proto, { keepCase: false, longs: String, defaults: true });
const Probe = grpc.loadPackageDefinition(definition).probe.Probe;
const MiB = 1024 * 1024;
const options = {
  'grpc.default_authority': args.authority,
  'grpc.max_receive_message_length': 8 * MiB,
  'grpc.max_send_message_length': 8 * MiB,
};
let credentials = grpc.credentials.createInsecure();
if (args.ca) {
  credentials = grpc.credentials.createSsl(fs.readFileSync(args.ca));
  options['grpc.ssl_target_name_override'] = args.authority;
}
const client = new Probe(args.target, credentials, options);

const NonAscii = 'no greeting for ünïcødé ✓ 日本 %';

function metadata() {
  const m = new grpc.Metadata();
  m.set('x-echo', 'echo-value');
  m.set('x-echo-trailer', 'trailer-value');
  return m;
}

function pick(md, key) {
  const values = md ? md.get(key) : [];
  return values.length ? String(values[0]) : null;
}

function outcome(error, extra) {
  return Object.assign({
    code: error ? error.code : 0,
    details: error ? error.details : '',
  }, extra);
}

// Collects what a call saw: its status, the echoed header and trailer, and its replies.
function track(call, deadlineMs) {
  const seen = { header: null, trailer: null, replies: 0, bytes: 0 };
  call.on('metadata', (md) => { seen.header = pick(md, 'x-echo'); });
  call.on('status', (status) => {
    seen.trailer = pick(status.metadata, 'x-echo-trailer');
    // Unary and client-streaming calls send the echo header with the status when they fail first.
    if (seen.header === null) {
      seen.header = pick(status.metadata, 'x-echo');
    }
  });
  return seen;
}

function unary(request, callOptions) {
  return new Promise((resolve) => {
    const call = client.unary(request, metadata(), callOptions || {}, (error, reply) => {
      setImmediate(() => resolve(outcome(error, {
        header: seen.header, trailer: seen.trailer,
        replies: reply ? 1 : 0, bytes: reply ? reply.payload.length : 0,
      })));
    });
    const seen = track(call);
  });
}

function serverStream(request) {
  return new Promise((resolve) => {
    const call = client.serverStream(request, metadata());
    const seen = track(call);
    let error = null;
    call.on('data', (reply) => { seen.replies++; seen.bytes += reply.payload.length; });
    call.on('error', (e) => { error = e; });
    call.on('status', () => setImmediate(() => resolve(outcome(error, seen))));
  });
}

function clientStream(requests) {
  return new Promise((resolve) => {
    const call = client.clientStream(metadata(), (error, reply) => {
      setImmediate(() => resolve(outcome(error, {
        header: seen.header, trailer: seen.trailer,
        replies: reply ? 1 : 0, received: reply ? Number(reply.received) : 0,
      })));
    });
    const seen = track(call);
    for (const r of requests) {
      call.write(r);
    }
    call.end();
  });
}

function bidi(requests) {
  return new Promise((resolve) => {
    const call = client.bidi(metadata());
    const seen = track(call);
    let error = null;
    let next = 0;
    const sendNext = () => {
      if (next < requests.length) {
        call.write(requests[next++]);
      } else {
        call.end();
      }
    };
    // One message at a time: each reply must arrive before the next message is sent.
    call.on('data', (reply) => { seen.replies++; seen.bytes += reply.payload.length; sendNext(); });
    call.on('error', (e) => { error = e; });
    call.on('status', () => setImmediate(() => resolve(outcome(error, seen))));
    sendNext();
  });
}

// Cancels a server stream after its first reply.
function cancelMidStream(tag) {
  return new Promise((resolve) => {
    const call = client.serverStream({ replies: 1, replySize: 16, waitForCancel: true, tag }, metadata());
    const seen = track(call);
    let error = null;
    call.on('data', (reply) => { seen.replies++; seen.bytes += reply.payload.length; call.cancel(); });
    call.on('error', (e) => { error = e; });
    call.on('status', () => setImmediate(() => resolve(outcome(error, { replies: seen.replies }))));
  });
}

function unimplemented() {
  return new Promise((resolve) => {
    // A method the server does not have, called through the same channel.
    client.makeUnaryRequest('/probe.Probe/Missing', (x) => x, (x) => x, Buffer.alloc(0), (error) => resolve(outcome(error, {})));
  });
}

async function main() {
  const results = {};
  // Every status a server can raise before its first reply: a trailers-only response.
  for (let code = 1; code <= 16; code++) {
    results[`unary status ${code} before a reply`] = await unary({ failCode: code, failMessage: `${NonAscii} ${code}` });
  }
  results['unary ok with metadata'] = await unary({ replySize: 10, payload: Buffer.alloc(3) });
  results['unimplemented method'] = await unimplemented();
  results['unary 4 MiB each way'] = await unary({ replySize: 4 * MiB, payload: Buffer.alloc(4 * MiB) });
  // Every status after the first reply (real trailers), and before any reply of a stream.
  for (let code = 1; code <= 16; code++) {
    results[`server stream status ${code} after 3 replies`] = await serverStream({ replies: 3, replySize: 100, failCode: code, failMessage: NonAscii });
  }
  for (const code of [5, 13]) {
    results[`server stream status ${code} before a reply`] = await serverStream({ replies: 0, failCode: code, failMessage: NonAscii });
  }
  results['server stream ok, 4 MiB replies'] = await serverStream({ replies: 2, replySize: 4 * MiB });
  results['client stream ok'] = await clientStream([{ payload: Buffer.alloc(1000) }, { payload: Buffer.alloc(4 * MiB) }, { payload: Buffer.alloc(1) }]);
  results['client stream status 7'] = await clientStream([{ payload: Buffer.alloc(10) }, { failCode: 7, failMessage: NonAscii }]);
  results['bidi ok'] = await bidi([1, 2, 3, 4, 5].map((n) => ({ payload: Buffer.alloc(n * 100), replySize: n })));
  results['bidi status 9 mid-stream'] = await bidi([{ replySize: 1 }, { replySize: 1 }, { failCode: 9, failMessage: NonAscii }]);
  // The client writes its own timings into the details of a deadline it enforced; the code is what counts.
  const deadline = await unary({ waitForCancel: true, tag: `${args.tag}-deadline` }, { deadline: Date.now() + 500 });
  results['deadline exceeded'] = { code: deadline.code, replies: deadline.replies };
  results['cancelled mid-stream'] = await cancelMidStream(`${args.tag}-cancel`);
  const many = await Promise.all(Array.from({ length: 100 }, (_, i) => unary({ replySize: i })));
  results['100 concurrent calls on one channel'] = {
    ok: many.filter((r) => r.code === 0).length,
    bytes: many.reduce((sum, r) => sum + r.bytes, 0),
  };
  client.close();
  process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((e) => {
  process.stderr.write(`probe-client failed: ${e.stack || e}\n`);
  process.exit(2);
});
