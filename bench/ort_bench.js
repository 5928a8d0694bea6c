#!/usr/bin/env node
// ort_bench.js - ONNX Runtime's inference throughput on one model, the
// other half of bench/ort_bench.sh.
//
//   node bench/ort_bench.js MODEL.onnx --batch B --threads T --seconds S
//
// Random input of shape [B, 1, 28, 28] (the zoo's default input),
// three warm-up runs, then as many runs as fit in S seconds. Prints
// "images/s X".
'use strict';
const path = require('path');

function die(msg) {
  process.stderr.write(`ort_bench: error: ${msg}\n`);
  process.exit(1);
}

async function main() {
  const argv = process.argv.slice(2);
  const o = { model: null, batch: 1, threads: 1, seconds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? Number(argv[++i]) : die(`${a} needs a value`));
    if (a === '--batch') o.batch = val();
    else if (a === '--threads') o.threads = val();
    else if (a === '--seconds') o.seconds = val();
    else if (!a.startsWith('-') && !o.model) o.model = a;
    else die(`unexpected argument ${a}`);
  }
  if (!o.model) die('usage: ort_bench.js MODEL.onnx --batch B --threads T --seconds S');
  let ort;
  try {
    ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));
  } catch (e) {
    die(`cannot load onnxruntime-node (run \`make deps\`): ${e.message}`);
  }
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  // the zoo's models at their default size take 1x28x28 images
  const dims = [o.batch, 1, 28, 28];
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  for (let k = 0; k < data.length; k++) data[k] = Math.sin(k * 12.9898) * 0.5;
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', data, dims) };
  for (let k = 0; k < 3; k++) await session.run(feeds);
  let runs = 0;
  const t0 = process.hrtime.bigint();
  let dt = 0;
  while (dt < o.seconds) {
    await session.run(feeds);
    runs++;
    dt = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  process.stdout.write(`images/s ${(runs * o.batch / dt).toFixed(1)}\n`);
}

main().catch((e) => die(e.stack || String(e)));
