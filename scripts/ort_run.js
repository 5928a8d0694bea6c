#!/usr/bin/env node
// ort_run.js - run an ONNX model with ONNX Runtime (onnxruntime-node) on
// ONNX TensorProto files, the second runtime the export tests compare
// nasc against.
//
//   node scripts/ort_run.js MODEL.onnx IN.pb OUT.pb
//   node scripts/ort_run.js MODEL.onnx --input A.pb [--input B.pb ...]
//        --output Y.pb [--output Z.pb ...] [--compare REF.pb ...]
//        [--rtol 1e-3] [--atol 1e-5] [--threads 1]
//   node scripts/ort_run.js --list LIST [--rtol ...] [--atol ...]
//
// --list runs many models in one process (one Node.js start-up for a whole
// test): each line of LIST is `MODEL.onnx IN.pb OUT.pb REF.pb`, output 0
// written to OUT.pb and compared with REF.pb; a model of several inputs
// lists them joined by commas: `IN.pb,IN2.pb`.
//
// Inputs bind to the model's inputs in order; output i goes to the i-th
// --output. With --compare, output i is also compared with REF i (another
// runtime's result) element by element: |ref - ort| <= atol + rtol * |ort|.
// It prints the largest absolute error and the worst element's ratio to its
// tolerance, and exits 1 when any element is outside it (or on any error).
//
// TensorProto files are read and written here with a small protobuf codec:
// FLOAT tensors only, values in raw_data (little-endian) or float_data;
// that is what onnx.numpy_helper and `nasc run` write.
'use strict';

const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`ort_run: error: ${msg}\n`);
  process.exit(1);
}

function loadOrt() {
  try {
    return require('onnxruntime-node');
  } catch (e) {
    const root = path.resolve(__dirname, '..');
    try {
      return require(path.join(root, 'node_modules', 'onnxruntime-node'));
    } catch (e2) {
      die(`cannot load onnxruntime-node (${e2.message.split('\n')[0]}); run \`make deps\` ` +
          `(npm install --ignore-scripts in ${root})`);
    }
  }
}

// ---- protobuf: just enough for onnx.TensorProto -------------------------

const FLOAT = 1;

class Reader {
  constructor(buf, file) {
    this.buf = buf;
    this.pos = 0;
    this.file = file;
  }
  fail(what) {
    die(`${this.file}: not an ONNX TensorProto: ${what} at byte ${this.pos}`);
  }
  varint() {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.buf.length) this.fail('truncated varint');
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return BigInt.asIntN(64, v);
    }
    this.fail('varint too long');
  }
  bytes() {
    const n = Number(this.varint());
    if (n < 0 || this.pos + n > this.buf.length) this.fail('truncated field');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  skip(wire) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.fail(`wire type ${wire}`);
    if (this.pos > this.buf.length) this.fail('truncated field');
  }
}

function readTensor(file) {
  let buf;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    die(`${file}: cannot read: ${e.message}`);
  }
  const r = new Reader(buf, file);
  const dims = [];
  let dtype = null, name = '', raw = null, floats = [], external = false;
  while (r.pos < buf.length) {
    const key = Number(r.varint());
    const field = key >>> 3, wire = key & 7;
    if (field === 1 && wire === 0) {
      dims.push(Number(r.varint()));
    } else if (field === 1 && wire === 2) {
      const sub = new Reader(r.bytes(), file);
      while (sub.pos < sub.buf.length) dims.push(Number(sub.varint()));
    } else if (field === 2 && wire === 0) {
      dtype = Number(r.varint());
    } else if (field === 4 && wire === 2) {
      const b = r.bytes();
      if (b.length % 4) r.fail('float_data length');
      for (let i = 0; i < b.length; i += 4) floats.push(b.readFloatLE(i));
    } else if (field === 4 && wire === 5) {
      if (r.pos + 4 > buf.length) r.fail('truncated float');
      floats.push(buf.readFloatLE(r.pos));
      r.pos += 4;
    } else if (field === 8 && wire === 2) {
      name = r.bytes().toString('utf8');
    } else if (field === 9 && wire === 2) {
      raw = r.bytes();
    } else if (field === 14 && wire === 0) {
      external = Number(r.varint()) === 1;
    } else {
      r.skip(wire);
    }
  }
  if (dtype !== FLOAT) die(`${file}: data type ${dtype}, only FLOAT (1) is supported`);
  if (external) die(`${file}: external data is not supported`);
  const numel = dims.reduce((a, b) => a * b, 1);
  let data;
  if (raw) {
    if (raw.length !== numel * 4) die(`${file}: shape [${dims}] needs ${numel} floats, raw_data has ${raw.length} bytes`);
    data = new Float32Array(numel);
    for (let i = 0; i < numel; i++) data[i] = raw.readFloatLE(4 * i);
  } else {
    if (floats.length !== numel) die(`${file}: shape [${dims}] needs ${numel} floats, float_data has ${floats.length}`);
    data = Float32Array.from(floats);
  }
  return { name, dims, data };
}

function varintBytes(v) {
  const out = [];
  let x = BigInt.asUintN(64, BigInt(v));
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return Buffer.from(out);
}

function lenField(field, payload) {
  return Buffer.concat([varintBytes((field << 3) | 2), varintBytes(payload.length), payload]);
}

function writeTensor(file, name, dims, data) {
  const raw = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) raw.writeFloatLE(data[i], 4 * i);
  const parts = [
    lenField(1, Buffer.concat(dims.map(varintBytes))),
    Buffer.concat([varintBytes((2 << 3) | 0), varintBytes(FLOAT)]),
    lenField(8, Buffer.from(name, 'utf8')),
    lenField(9, raw),
  ];
  fs.writeFileSync(file, Buffer.concat(parts));
}

// ---- command line ---------------------------------------------------------

function parseArgs(argv) {
  const o = { model: null, inputs: [], outputs: [], compare: [], rtol: 1e-3, atol: 1e-5, threads: 1, list: null };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) die(`option ${a} needs a value`);
      return argv[++i];
    };
    if (a === '--input') o.inputs.push(val());
    else if (a === '--output') o.outputs.push(val());
    else if (a === '--compare') o.compare.push(val());
    else if (a === '--rtol') o.rtol = Number(val());
    else if (a === '--atol') o.atol = Number(val());
    else if (a === '--threads') o.threads = Number(val());
    else if (a === '--list') o.list = val();
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node scripts/ort_run.js MODEL.onnx IN.pb OUT.pb\n' +
        '       node scripts/ort_run.js MODEL.onnx --input IN.pb... --output OUT.pb...\n' +
        '            [--compare REF.pb...] [--rtol R] [--atol A] [--threads T]\n');
      process.exit(0);
    } else if (a.startsWith('-')) die(`unknown option ${a}`);
    else pos.push(a);
  }
  if (o.list !== null) {
    if (pos.length || o.inputs.length || o.outputs.length) die('--list takes no model or tensor arguments');
    return o;
  }
  if (pos.length === 3 && !o.inputs.length && !o.outputs.length) {
    o.model = pos[0];
    o.inputs.push(pos[1]);
    o.outputs.push(pos[2]);
  } else if (pos.length === 1) {
    o.model = pos[0];
  } else {
    die('usage: ort_run.js MODEL.onnx IN.pb OUT.pb (or --input/--output; see --help)');
  }
  if (!o.inputs.length) die('no input tensor given');
  if (!(o.rtol >= 0) || !(o.atol >= 0)) die('--rtol and --atol want numbers >= 0');
  if (o.compare.length > o.outputs.length) die('more --compare than --output files');
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ort = loadOrt();
  if (o.list === null) process.exit((await runOne(ort, o)) ? 1 : 0);
  let lines;
  try {
    lines = fs.readFileSync(o.list, 'utf8').split('\n').filter((l) => l.trim() !== '');
  } catch (e) {
    die(`cannot read ${o.list}: ${e.message}`);
  }
  let failed = 0;
  for (const [n, line] of lines.entries()) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 4) die(`${o.list}:${n + 1}: expected MODEL.onnx IN.pb OUT.pb REF.pb`);
    process.stdout.write(`${f[0]}: `);
    const one = { ...o, model: f[0], inputs: f[1].split(','), outputs: [f[2]], compare: [f[3]] };
    if (await runOne(ort, one)) failed++;
  }
  process.stdout.write(`ort_run: ${lines.length - failed} of ${lines.length} models agree\n`);
  process.exit(failed ? 1 : 0);
}

// Run one model; true when an output disagrees with its reference.
async function runOne(ort, o) {
  let session;
  try {
    session = await ort.InferenceSession.create(o.model, {
      intraOpNumThreads: o.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    die(`${o.model}: ONNX Runtime cannot load the model: ${e.message}`);
  }
  if (o.inputs.length !== session.inputNames.length)
    die(`${o.model} has ${session.inputNames.length} inputs (${session.inputNames}), ${o.inputs.length} given`);
  if (o.outputs.length > session.outputNames.length)
    die(`${o.model} has ${session.outputNames.length} outputs, ${o.outputs.length} --output given`);
  const feeds = {};
  o.inputs.forEach((file, i) => {
    const t = readTensor(file);
    feeds[session.inputNames[i]] = new ort.Tensor('float32', t.data, t.dims);
  });
  let results;
  try {
    results = await session.run(feeds);
  } catch (e) {
    die(`${o.model}: ONNX Runtime failed: ${e.message}`);
  }
  let bad = false;
  o.outputs.forEach((file, i) => {
    const name = session.outputNames[i];
    const y = results[name];
    const data = y.data;
    writeTensor(file, name, y.dims.map(Number), data);
    if (i >= o.compare.length) return;
    const ref = readTensor(o.compare[i]);
    const same = ref.dims.length === y.dims.length && ref.dims.every((d, k) => d === Number(y.dims[k]));
    if (!same) {
      process.stdout.write(`${name}: shape mismatch: ${o.compare[i]} is [${ref.dims}], ONNX Runtime gives [${y.dims}]\n`);
      bad = true;
      return;
    }
    let maxAbs = 0, worst = 0, where = -1, nans = 0;
    for (let k = 0; k < data.length; k++) {
      const err = Math.abs(ref.data[k] - data[k]);
      if (Number.isNaN(err)) {
        if (nans++ === 0 && worst <= 1) where = k;
        continue;
      }
      const ratio = err / (o.atol + o.rtol * Math.abs(data[k]));
      if (err > maxAbs) maxAbs = err;
      if (ratio > worst) {
        worst = ratio;
        if (!nans || worst > 1) where = k;
      }
    }
    const ok = worst <= 1 && nans === 0;
    process.stdout.write(`${name}: max abs error ${maxAbs.toExponential(3)}, worst/tolerance ${worst.toFixed(3)}` +
      `${nans ? `, ${nans} NaN` : ''} (${data.length} values, rtol ${o.rtol}, atol ${o.atol}) ` +
      `${ok ? 'ok' : 'MISMATCH'}\n`);
    if (!ok) {
      process.stdout.write(`  element ${where}: ${o.compare[i]} has ${ref.data[where]}, ONNX Runtime ${data[where]}\n`);
      bad = true;
    }
  });
  return bad;
}

main().catch((e) => die(e.stack || String(e)));
