#!/usr/bin/env node
// A small Node.js client of heygen.v1.AvatarsService, VoicesService and
// VideosService, with @grpc/grpc-js and @grpc/proto-loader loading
// proto/heygen/v1/avatars.proto, voices.proto and videos.proto at run time.
//
// It lists studio avatars (a filter), follows next_page_token twice, gets one
// avatar by id, for two bad ids prints the status code name and the
// google.rpc.ErrorInfo reason decoded from the grpc-status-details-bin
// trailer, and lists a page of voices (filtered by language and gender).
// Then it creates a video with a request_id (a new UUID), sends the create
// again as a retry would, which makes no second video, and watches it until
// it is rendered. Every call has a deadline. It checks what it gets and
// exits 1 on anything unexpected, so CI can run it against the demo server.
//
//   npm ci && HEYGEN_GRPC_ADDR=localhost:50051 node client.js
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const ADDR = process.env.HEYGEN_GRPC_ADDR || 'localhost:50051';
const CALL_TIMEOUT_MS = 10_000; // deadline of each call, retries included
const PAGE_SIZE = 3;
const PAGES = 3; // so next_page_token is followed PAGES-1 times
const WATCH_TIMEOUT_MS = 120_000; // WatchVideo: longer than the demo's 8 s render
const VIDEO_AVATAR = 'Zoe_OutdoorPark_20240523'; // a demo avatar with a default voice

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');

// google/protobuf/timestamp.proto (imported by avatars.proto) is not on disk:
// protobufjs, under proto-loader, ships the well-known types and resolves them
// offline.
const packageDefinition = protoLoader.loadSync(
  ['avatars.proto', 'voices.proto', 'videos.proto'].map((f) => path.join(PROTO_ROOT, 'heygen', 'v1', f)),
  {
  includeDirs: [PROTO_ROOT],
    keepCase: true, // field names as in the .proto (avatar_type, next_page_token)
    enums: String, // enum values by name
    longs: String,
    defaults: false,
    oneofs: true,
  },
);
const heygenv1 = grpc.loadPackageDefinition(packageDefinition).heygen.v1;

// google.rpc.Status and its details, for the grpc-status-details-bin trailer.
// keepCase: field names as in the .proto (type_url, field_violations).
const rpcRoot = new protobuf.Root().loadSync(
  [
    path.join(__dirname, 'proto', 'google', 'rpc', 'status.proto'),
    path.join(__dirname, 'proto', 'google', 'rpc', 'error_details.proto'),
  ],
  { keepCase: true },
);
const Status = rpcRoot.lookupType('google.rpc.Status');
const detailTypes = {
  'type.googleapis.com/google.rpc.ErrorInfo': rpcRoot.lookupType('google.rpc.ErrorInfo'),
  'type.googleapis.com/google.rpc.BadRequest': rpcRoot.lookupType('google.rpc.BadRequest'),
  'type.googleapis.com/google.rpc.RetryInfo': rpcRoot.lookupType('google.rpc.RetryInfo'),
};

// Retry UNAVAILABLE only, with exponential backoff, through gRPC's own retry
// support (service config). Every other code is final: the gateway already
// retries HeyGen itself. A retried CreateVideo is safe: it carries the same
// request_id.
const serviceConfig = {
  methodConfig: [
    {
      name: [{ service: 'heygen.v1.AvatarsService' }, { service: 'heygen.v1.VoicesService' }, { service: 'heygen.v1.VideosService' }],
      retryPolicy: {
        maxAttempts: 5,
        initialBackoff: '0.1s',
        maxBackoff: '2s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
};

const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);

// decodeStatusDetails decodes the grpc-status-details-bin trailer of a failed
// call into { errorInfo, badRequest, retryInfo } (each may be undefined).
function decodeStatusDetails(err) {
  const out = {};
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return out;
  const st = Status.decode(raw);
  for (const any of st.details) {
    const type = detailTypes[any.type_url];
    if (!type) continue;
    const msg = type.toObject(type.decode(any.value), { defaults: true });
    if (any.type_url.endsWith('ErrorInfo')) out.errorInfo = msg;
    if (any.type_url.endsWith('BadRequest')) out.badRequest = msg;
    if (any.type_url.endsWith('RetryInfo')) out.retryInfo = msg;
  }
  return out;
}

// call invokes a unary method with a deadline and returns a promise.
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + CALL_TIMEOUT_MS);
    client[method](request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function describe(err) {
  const { errorInfo } = decodeStatusDetails(err);
  return `${codeName(err.code)} ${errorInfo ? errorInfo.reason : '(no ErrorInfo)'}: ${err.details}`;
}

class Unexpected extends Error {}
function expect(cond, message) {
  if (!cond) throw new Unexpected(message);
}

async function listStudioAvatars(client) {
  console.log(`ListAvatars avatar_type=AVATAR_TYPE_STUDIO_AVATAR page_size=${PAGE_SIZE}`);
  const seen = new Set();
  let first = '';
  let token = '';
  for (let page = 1; page <= PAGES; page++) {
    let resp;
    try {
      resp = await call(client, 'ListAvatars', {
        page_size: PAGE_SIZE,
        page_token: token,
        avatar_type: 'AVATAR_TYPE_STUDIO_AVATAR',
      });
    } catch (err) {
      throw new Unexpected(`ListAvatars page ${page}: ${describe(err)}`);
    }
    const avatars = resp.avatars || [];
    expect(avatars.length >= 1 && avatars.length <= PAGE_SIZE, `ListAvatars page ${page}: ${avatars.length} avatars, want 1 to ${PAGE_SIZE}`);
    console.log(`  page ${page}:`);
    for (const a of avatars) {
      expect(a.avatar_type === 'AVATAR_TYPE_STUDIO_AVATAR', `ListAvatars page ${page}: ${a.id} is ${a.avatar_type} despite the filter`);
      expect(!seen.has(a.id), `ListAvatars page ${page}: ${a.id} was already on an earlier page`);
      seen.add(a.id);
      if (!first) first = a.id;
      console.log(`    ${a.id.padEnd(34)} ${a.name}`);
    }
    token = resp.next_page_token || '';
    expect(page === PAGES || token !== '', `ListAvatars page ${page}: no next_page_token, but the demo catalogue has more`);
  }
  console.log(`  ${seen.size} avatars on ${PAGES} pages (next_page_token followed ${PAGES - 1} times)`);
  return first;
}

async function getAvatar(client, id) {
  let resp;
  try {
    resp = await call(client, 'GetAvatar', { avatar_id: id });
  } catch (err) {
    throw new Unexpected(`GetAvatar ${id}: ${describe(err)}`);
  }
  const a = resp.avatar || {};
  expect(a.id === id, `GetAvatar ${id} returned ${JSON.stringify(a.id)}`);
  const created = a.created_at ? new Date(Number(a.created_at.seconds) * 1000).toISOString() : 'unknown';
  console.log(`GetAvatar ${id}: "${a.name}", ${a.avatar_type}, created ${created}`);
}

async function expectError(client, id, wantCode, wantReason, wantDomain, wantBadRequest) {
  let err;
  try {
    await call(client, 'GetAvatar', { avatar_id: id });
  } catch (e) {
    err = e;
  }
  expect(err, `GetAvatar ${JSON.stringify(id)} succeeded, want ${codeName(wantCode)}`);
  const { errorInfo, badRequest } = decodeStatusDetails(err);
  const fields = ((badRequest && badRequest.field_violations) || []).map((v) => ` field_violation=${v.field}`).join('');
  console.log(
    `GetAvatar ${JSON.stringify(id)}: code=${codeName(err.code)} reason=${errorInfo ? errorInfo.reason : ''} domain=${errorInfo ? errorInfo.domain : ''}${fields}`,
  );
  expect(err.code === wantCode, `GetAvatar ${JSON.stringify(id)}: code ${codeName(err.code)}, want ${codeName(wantCode)} (${err.details})`);
  expect(errorInfo, `GetAvatar ${JSON.stringify(id)}: no google.rpc.ErrorInfo in grpc-status-details-bin`);
  expect(
    errorInfo.reason === wantReason && errorInfo.domain === wantDomain,
    `GetAvatar ${JSON.stringify(id)}: ErrorInfo ${errorInfo.domain}/${errorInfo.reason}, want ${wantDomain}/${wantReason}`,
  );
  expect(!wantBadRequest || fields !== '', `GetAvatar ${JSON.stringify(id)}: no google.rpc.BadRequest field violation`);
}

// listVoices reads one page of English female voices (catalogue filters).
async function listVoices(client) {
  const request = { page_size: PAGE_SIZE, language: 'English', gender: 'female' };
  console.log(`ListVoices language=${request.language} gender=${request.gender} page_size=${PAGE_SIZE}`);
  let resp;
  try {
    resp = await call(client, 'ListVoices', request);
  } catch (err) {
    throw new Unexpected(`ListVoices: ${describe(err)}`);
  }
  const voices = resp.voices || [];
  expect(voices.length === PAGE_SIZE, `ListVoices: ${voices.length} voices, want ${PAGE_SIZE}`);
  for (const v of voices) {
    expect(v.language === 'English' && v.gender === 'female', `ListVoices: ${v.id} is ${v.language} ${v.gender} despite the filters`);
    console.log(`    ${v.id.padEnd(34)} ${v.name}`);
  }
  expect(resp.next_page_token, 'ListVoices: no next_page_token, but the demo has more English female voices');
}

// createAndWatch makes a video and follows it until it is rendered. The
// create carries a request_id, made once and reused by every retry of it:
// however often it is sent, HeyGen renders and bills one video.
async function createAndWatch(client) {
  const request = {
    request_id: crypto.randomUUID(),
    avatar: { avatar_id: VIDEO_AVATAR },
    script: { text: 'Hello from the Node example, made through the gateway.' },
    title: 'Node example',
  };
  console.log(`CreateVideo avatar=${VIDEO_AVATAR} title=${JSON.stringify(request.title)} request_id=<a new UUID>`);
  const create = async () => {
    try {
      return (await call(client, 'CreateVideo', request)).video;
    } catch (err) {
      throw new Unexpected(`CreateVideo: ${describe(err)}`);
    }
  };
  const video = await create();
  console.log(`  created: ${video.status}`);
  const again = await create(); // as after a timeout: the same request_id
  expect(again.id === video.id, `CreateVideo with the same request_id made a second video: ${video.id}, then ${again.id}`);
  console.log('  sent again with the same request_id: the same video');

  const last = await new Promise((resolve, reject) => {
    const stream = client.WatchVideo({ video_id: video.id }, { deadline: new Date(Date.now() + WATCH_TIMEOUT_MS) });
    let latest;
    stream.on('data', (resp) => {
      const v = resp.video;
      if (!latest || v.status !== latest.status) console.log(`  WatchVideo: ${v.status}`); // else a heartbeat
      latest = v;
    });
    stream.on('error', (err) => reject(new Unexpected(`WatchVideo: ${describe(err)}`)));
    stream.on('end', () => resolve(latest)); // rendered (or failed): the stream ends
  });
  expect(last && last.status === 'VIDEO_STATUS_COMPLETED' && last.video_url, `WatchVideo ended at ${last && last.status}, want a completed video with its URL`);
  const url = new URL(last.video_url);
  const seconds = Number(last.duration.seconds || 0) + (last.duration.nanos || 0) / 1e9;
  const validDays = (Number(last.url_expire_time.seconds) - Number(last.complete_time.seconds)) / 86400;
  console.log(`  ${seconds.toFixed(1)} s of video at https://${url.host}/.../${path.basename(url.pathname)}, valid for ${validDays.toFixed(0)} days`);
}

async function main() {
  // Plain text for the local demo server; grpc.credentials.createSsl() (or a
  // mesh's mTLS) anywhere else.
  const options = {
    'grpc.service_config': JSON.stringify(serviceConfig),
    'grpc.enable_retries': 1,
  };
  const client = new heygenv1.AvatarsService(ADDR, grpc.credentials.createInsecure(), options);
  // Same target and options: grpc-js shares the connection between the two.
  const voices = new heygenv1.VoicesService(ADDR, grpc.credentials.createInsecure(), options);
  const videos = new heygenv1.VideosService(ADDR, grpc.credentials.createInsecure(), options);
  console.log(`connected to ${ADDR}`);
  try {
    const id = await listStudioAvatars(client);
    await getAvatar(client, id);
    await expectError(client, 'no_such_avatar', grpc.status.NOT_FOUND, 'HEYGEN_NOT_FOUND', 'api.heygen.com', false);
    await expectError(client, '../x', grpc.status.INVALID_ARGUMENT, 'INVALID_REQUEST', 'heygen-grpc.gateway', true);
    await listVoices(voices);
    await createAndWatch(videos);
  } finally {
    client.close();
    voices.close();
    videos.close();
  }
  console.log('OK: all checks passed');
}

main().catch((err) => {
  console.error(`FAIL: ${err instanceof Unexpected ? err.message : err.stack || err}`);
  process.exitCode = 1;
});
