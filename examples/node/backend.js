#!/usr/bin/env node
// A tenant's backend talking to iotca over gRPC, in Node.js
// (@grpc/grpc-js, with @grpc/proto-loader reading ../../proto at run time).
//
// usage: node backend.js COMMAND [ARGS]
//
//   regcode                            the registration code (the CN of a
//                                      validation certificate)
//   cas                                the account's CA certificates
//   create-product NAME                an X.509 / private-CA / MQTT product
//   upload CA_ID FILE.csv              associate certificate SNs with
//                                      devices (ProductKey,DeviceName,CertSN)
//   associations CA_ID [PRODUCT_KEY]   the associations of a CA
//   disable PRODUCT_KEY DEVICE_NAME    refuse the device at the edge
//   enable PRODUCT_KEY DEVICE_NAME     accept it again
//
// environment:
//   IOTCA_API_KEY      the tenant API key (required)
//   IOTCA_REGISTRY     registry address, default 127.0.0.1:50051
//   IOTCA_ASSOCIATION  association address, default 127.0.0.1:50052
//   IOTCA_PROTO_DIR    the proto/ folder, default ../../proto beside this file
//
// Exit status: 0 done, 1 the server refused (or the file was refused),
// 2 the command line is wrong.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = process.env.IOTCA_PROTO_DIR ||
  path.join(__dirname, '..', '..', 'proto');
const TIMEOUT_MS = 10000; // the contract's advice: always set a deadline
const UPLOAD_TIMEOUT_MS = 30000; // ... and 30 s for UploadAssociations
const RETRIES = 4; // tries of an idempotent call that may be retried

const USAGE = `usage: node backend.js COMMAND [ARGS]
  regcode | cas | create-product NAME | upload CA_ID FILE.csv |
  associations CA_ID [PRODUCT_KEY] | disable PK DN | enable PK DN
environment: IOTCA_API_KEY (required), IOTCA_REGISTRY, IOTCA_ASSOCIATION,
IOTCA_PROTO_DIR`;

// ------------------------------------------------------------- stubs

// keepCase: field names as in the .proto (product_key); enums as their
// names; int64 as strings; every field present with its default.
const definition = protoLoader.loadSync(
  ['iotca/v1/registry.proto', 'iotca/v1/association.proto'],
  {includeDirs: [PROTO_DIR], keepCase: true, enums: String, longs: String,
    defaults: true});
const v1 = grpc.loadPackageDefinition(definition).iotca.v1;

// ------------------------------------------------------------ errors

// What each status code means for a tenant, and what to do about it. The
// server's message (err.details) says what exactly was wrong; branch on
// the code, never on that text.
const HINTS = {
  [grpc.status.UNAUTHENTICATED]: 'the API key was refused: check ' +
    'IOTCA_API_KEY (revoked keys are refused too)',
  [grpc.status.PERMISSION_DENIED]: 'this credential may not do that: use ' +
    'a tenant API key, not the operator token',
  [grpc.status.NOT_FOUND]: 'no such object in this account',
  [grpc.status.INVALID_ARGUMENT]: 'the request is malformed',
  [grpc.status.ALREADY_EXISTS]: 'it exists already',
  [grpc.status.FAILED_PRECONDITION]: 'not possible in the object\'s ' +
    'current state',
  [grpc.status.RESOURCE_EXHAUSTED]: 'a limit was reached',
  [grpc.status.ABORTED]: 'a concurrent change got in the way: send the ' +
    'same request again',
  [grpc.status.UNAVAILABLE]: 'the service cannot be reached, or its etcd ' +
    'has no quorum: is it running at that address? Retry later',
  [grpc.status.DEADLINE_EXCEEDED]: 'no answer in time: the outcome of a ' +
    'write is unknown',
};

// Worth another try, with backoff, when the call is safe to repeat.
const TRANSIENT = new Set([grpc.status.UNAVAILABLE, grpc.status.ABORTED,
  grpc.status.DEADLINE_EXCEEDED]);

// The name of a status code: 5 -> NOT_FOUND.
function codeName(code) {
  return Object.keys(grpc.status).find((k) => grpc.status[k] === code) ||
    String(code);
}

// A call the server refused: the message is for the user.
class Failed extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Both services behind one API key.
class Client {
  constructor(apiKey, registryAddr, associationAddr) {
    this.metadata = new grpc.Metadata();
    this.metadata.set('authorization', `Bearer ${apiKey}`);
    const creds = grpc.credentials.createInsecure();
    this.registry = new v1.Registry(registryAddr, creds);
    this.association = new v1.Association(associationAddr, creds);
    this.addrs = new Map([[this.registry, `Registry at ${registryAddr}`],
      [this.association, `Association at ${associationAddr}`]]);
  }

  // stub.method(request) with the key and a deadline; retries transient
  // failures of idempotent calls. Rejects with Failed.
  async call(stub, method, request,
      {timeoutMs = TIMEOUT_MS, idempotent = true} = {}) {
    let delay = 500;
    for (let attempt = 1; ; attempt++) {
      try {
        return await new Promise((resolve, reject) => {
          stub[method](request, this.metadata,
              {deadline: Date.now() + timeoutMs},
              (err, res) => (err ? reject(err) : resolve(res)));
        });
      } catch (err) {
        if (err.code === undefined) throw err; // not a gRPC status
        if (idempotent && TRANSIENT.has(err.code) && attempt < RETRIES) {
          await sleep(delay);
          delay *= 2;
          continue;
        }
        throw new Failed(`${method} (${this.addrs.get(stub)}): ` +
          `${codeName(err.code)}: ${err.details || 'no message'}\n` +
          `  (${HINTS[err.code] || 'unexpected status'})`);
      }
    }
  }

  close() {
    this.registry.close();
    this.association.close();
  }
}

// CA_STATUS_ACTIVE -> ACTIVE; a value newer than our .proto files stays a
// number.
const short = (name, prefix) =>
  typeof name === 'string' ? name.slice(prefix.length) : String(name);
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// ---------------------------------------------------------- commands

async function regcode(c) {
  const r = await c.call(c.registry, 'GetRegistrationCode', {});
  console.log(`registration code: ${r.registration_code}`);
  console.log('use it as the CN of the validation certificate:\n' +
    '  openssl req -new -key verificationCert.key ' +
    `-subj /CN=${r.registration_code} -out verificationCert.csr`);
}

async function cas(c) {
  let token = '';
  let n = 0;
  do {
    const r = await c.call(c.registry, 'ListCaCertificates',
        {page_token: token});
    for (const ca of r.ca_certificates) {
      n++;
      console.log(`${ca.id}  ${short(ca.status, 'CA_STATUS_').padEnd(8)}  ` +
        `${ca.name}  SN ${ca.serial_number}  ${ca.subject}`);
    }
    token = r.next_page_token;
  } while (token);
  console.log(plural(n, 'CA certificate'));
}

async function createProduct(c, name) {
  // CreateProduct is not repeated on failure: a retry after an unknown
  // outcome could meet ALREADY_EXISTS for our own product.
  const p = await c.call(c.association, 'CreateProduct',
      {name, use_private_ca: true, auth_mode: 'AUTH_MODE_X509_CERTIFICATE',
        net_type: 'NET_TYPE_MQTT'},
      {idempotent: false});
  console.log(`product created: ProductKey ${p.product_key} ` +
    `(name ${p.name})`);
}

async function upload(c, caId, file) {
  const csv = fs.readFileSync(file);
  // Re-sending the same file is safe (identical rows are left
  // unchanged), so transient failures are retried.
  const r = await c.call(c.association, 'UploadAssociations',
      {ca_id: caId, csv, file_name: path.basename(file)},
      {timeoutMs: UPLOAD_TIMEOUT_MS});
  if (r.committed) {
    console.log(`uploaded ${file}: ${plural(r.accepted_rows, 'row')} ` +
      `accepted (${r.unchanged_rows} unchanged) for product ${r.product_key}`);
    return 0;
  }
  console.log(`${file} refused: ${plural(r.total_errors, 'problem')}, ` +
    'nothing was changed');
  for (const e of r.errors) {
    const where = `line ${e.line}` +
      (e.column_name ? `, ${e.column_name}` : '');
    const value = e.value ? ` (value "${e.value}")` : '';
    console.log(`  ${where}: ${short(e.code, 'ROW_ERROR_CODE_')}: ` +
      `${e.message}${value}`);
  }
  if (r.total_errors > r.errors.length) {
    console.log(`  ... and ${r.total_errors - r.errors.length} more`);
  }
  return 1;
}

async function associations(c, caId, productKey = '') {
  let token = '';
  let n = 0;
  do {
    const r = await c.call(c.association, 'ListAssociations',
        {ca_id: caId, product_key: productKey, page_token: token});
    for (const a of r.associations) {
      n++;
      console.log(`${a.cert_sn}  ${a.product_key}/${a.device_name}  ` +
        short(a.device_status, 'DEVICE_STATUS_'));
    }
    token = r.next_page_token;
  } while (token);
  console.log(plural(n, 'association'));
}

async function setStatus(c, productKey, deviceName, status) {
  const r = await c.call(c.association, 'UpdateDeviceStatus',
      {product_key: productKey, device_name: deviceName, status});
  console.log(`device ${r.product_key}/${r.device_name} is ` +
    short(r.status, 'DEVICE_STATUS_'));
}

// name: [number of arguments (min, max), function]
const COMMANDS = {
  'regcode': [0, 0, regcode],
  'cas': [0, 0, cas],
  'create-product': [1, 1, createProduct],
  'upload': [2, 2, upload],
  'associations': [1, 2, associations],
  'disable': [2, 2, (c, pk, dn) => setStatus(c, pk, dn,
      'DEVICE_STATUS_DISABLED')],
  'enable': [2, 2, (c, pk, dn) => setStatus(c, pk, dn,
      'DEVICE_STATUS_ENABLED')],
};

// -------------------------------------------------------------- main

async function main(argv) {
  const [name, ...args] = argv;
  if (name === '-h' || name === '--help') {
    console.log(USAGE);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command || args.length < command[0] || args.length > command[1]) {
    console.error(USAGE);
    return 2;
  }
  const apiKey = process.env.IOTCA_API_KEY || '';
  if (!apiKey) {
    console.error('error: set IOTCA_API_KEY to the tenant API key');
    return 2;
  }
  const c = new Client(apiKey,
      process.env.IOTCA_REGISTRY || '127.0.0.1:50051',
      process.env.IOTCA_ASSOCIATION || '127.0.0.1:50052');
  try {
    return (await command[2](c, ...args)) || 0;
  } catch (err) {
    if (!(err instanceof Failed) && !err.code) throw err; // a bug: show it
    console.error(`error: ${err.message}`);
    return 1;
  } finally {
    c.close();
  }
}

main(process.argv.slice(2)).then((rc) => {
  process.exitCode = rc;
});
