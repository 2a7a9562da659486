#!/usr/bin/env node
// A load test of `unmask serve` on loopback: throughput, latency, memory, and what batching gains.
//
//   node bench/serve/load.mjs --binary build/release/unmask [--seconds 20] [--concurrency 8]
//        [--models a.gguf,b.gguf] [--parallel 8] [--queue 8] [--threads 2] [--extra 4] [--rounds 2] [--idle-release 2]
//        [--json FILE]
//
// It starts the server itself (--port 0), then
//  (a) for --seconds, --concurrency clients loop over a fixed mix of completions (every model, streamed and not,
//      prompts from the list below, max_tokens 32..64, a seed per request), and halfway through one burst of
//      parallel + queue + --extra requests at once provokes 503s; it reports requests/s, generated tokens/s (from
//      usage), latency and time to first token, errors by kind, the server's RSS (/proc, every 100 ms; after the
//      load, 2 s later and once the server's --idle-release has passed) and /metrics;
//  (b) sends the same --parallel requests one after another and then all at once, --rounds times (the best wall time
//      of each), and compares the texts (a batch must not change what a request generates).
// It exits 1 on an error other than 503, texts that differ, or a burst that provoked no 503.
// Only node's own modules: no npm install.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const { values: opt } = parseArgs({
  options: {
    binary: { type: 'string', default: path.join(repo, 'build/release/unmask') },
    seconds: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '8' },
    models: { type: 'string' },
    parallel: { type: 'string', default: '8' },
    queue: { type: 'string', default: '8' },
    threads: { type: 'string', default: '2' },
    extra: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '2' },
    'idle-release': { type: 'string', default: '2' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opt.help) {
  console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split("\n").slice(1, 17).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}
function positive(name, min = 1) {
  const v = Number(opt[name]);
  if (!Number.isFinite(v) || v < min) {
    console.error(`load.mjs: --${name} ${opt[name]}: expected a number >= ${min}`);
    process.exit(2);
  }
  return v;
}
const SECONDS = positive('seconds', 0.1);
const CONCURRENCY = Math.floor(positive('concurrency'));
const PARALLEL = Math.floor(positive('parallel'));
const QUEUE = Math.floor(positive('queue', 0));
const THREADS = Math.floor(positive('threads', 0));
const EXTRA = Math.floor(positive('extra', 0));
const ROUNDS = Math.floor(positive('rounds'));
const IDLE_RELEASE = positive('idle-release', 0);
const modelFiles = opt.models
  ? opt.models.split(',').filter(Boolean).map((f) => path.resolve(f))
  : [path.join(repo, 'models/kjv-mdlm.gguf'), path.join(repo, 'models/kjv-ar.gguf')];
for (const f of [opt.binary, ...modelFiles]) {
  if (!fs.existsSync(f)) {
    console.error(`load.mjs: ${f}: no such file`);
    process.exit(2);
  }
}

const PROMPTS = [
  'And God said',
  'In the beginning',
  'The LORD is my shepherd',
  'And it came to pass, when',
  'Blessed are the',
  'Now the serpent was',
  'The cat sat on the',
  'Once upon a time there was',
  'He went up into the mountain',
  'And they said unto him',
];

const log = (...a) => console.error(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---------------------------------------------------------------------------------------------------------------
// The server.

let server;
process.on('exit', () => server?.kill('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

function startServer(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(opt.binary, ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    server = child;
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    child.stdout.on('data', (d) => {
      out += d;
      if (!out.includes('\n')) return;
      const line = out.split('\n')[0];
      child.stdout.removeAllListeners('data');
      child.stdout.resume();
      const m = line.match(/listening on (http:\/\/[^\s/]+)\//);
      if (m) resolve({ child, url: m[1], line });
      else reject(new Error(`unmask serve: unexpected first line: ${line}`));
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => reject(new Error(`unmask serve exited (${code ?? signal}): ${err}`)));
  });
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const t = setTimeout(() => server.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

// VmRSS and VmHWM of the server, in MiB.
function memory(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN);
    return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

async function metrics(url) {
  const text = await (await fetch(url + '/metrics')).text();
  const m = {};
  for (const line of text.split('\n')) {
    const match = line.match(/^([a-z_]+)(\{[^}]*\})?\s+(\S+)$/);
    if (!match) continue;
    const key = match[1] + (match[2] ?? '');
    m[key] = Number(match[3]);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------------------------
// One request: the status, the latency, the time to the first text (streaming), the tokens from usage, the text.

async function request(url, body) {
  const t0 = now();
  const r = { stream: !!body.stream, model: body.model, status: 0, kind: null, latency: NaN, ttft: NaN, tokens: 0, text: '' };
  let res;
  try {
    res = await fetch(url + '/v1/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    r.status = res.status;
    if (res.status !== 200) {
      const j = await res.json().catch(() => null);
      r.kind = `HTTP ${res.status} ${j?.error?.code ?? '(no error object)'}`;
      r.latency = now() - t0;
      return r;
    }
    if (!body.stream) {
      const j = await res.json();
      r.text = j.choices[0].text;
      r.tokens = j.usage.completion_tokens;
      r.finish = j.choices[0].finish_reason;
    } else {
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      let done = false;
      while (!done) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const event = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = event.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data) continue;
          if (data === '[DONE]') {
            done = true;
            break;
          }
          const chunk = JSON.parse(data);
          if (chunk.error) {
            r.kind = `stream error ${chunk.error.code}`;
            break;
          }
          const c = chunk.choices?.[0];
          if (c?.text) {
            if (Number.isNaN(r.ttft)) r.ttft = now() - t0;
            r.text += c.text;
          }
          if (c?.finish_reason) r.finish = c.finish_reason;
          if (chunk.usage) r.tokens = chunk.usage.completion_tokens;
        }
        if (r.kind) break;
      }
      if (!done && !r.kind) r.kind = 'stream ended without [DONE]';
      if (!done) await reader.cancel().catch(() => {});
    }
  } catch (e) {
    r.kind = `network ${e.cause?.code ?? e.cause?.message ?? e.message}`;
  }
  r.latency = now() - t0;
  return r;
}

const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

// ---------------------------------------------------------------------------------------------------------------

async function main() {
  const args = modelFiles.flatMap((f) => ['-m', f]).concat(['--port', '0', '--parallel', `${PARALLEL}`, '--queue', `${QUEUE}`,
    '-t', `${THREADS}`, '--idle-release', `${IDLE_RELEASE}`]);
  const { url, line } = await startServer(args);
  const pid = server.pid;
  log(line);
  const models = (await (await fetch(url + '/v1/models')).json()).data.map((m) => ({ id: m.id, kind: m.unmask.kind }));
  const diffusion = models.find((m) => m.kind === 'diffusion') ?? models[0];
  const autoregressive = models.find((m) => m.kind === 'autoregressive');

  // The idle server, before any request: the weights are mapped but may not all be resident yet.
  await sleep(500);
  const startMem = memory(pid);
  // One request a model, so that the baseline is the warm idle server.
  for (const m of models) await request(url, { model: m.id, prompt: PROMPTS[0], max_tokens: 8, seed: 1 });
  await sleep(500);
  const baseMem = memory(pid);

  // ---- (a) load --------------------------------------------------------------------------------------------------
  let peakRss = baseMem.rss;
  const poll = setInterval(() => {
    const { rss } = memory(pid);
    if (rss > peakRss) peakRss = rss;
  }, 100);

  const before = await metrics(url);
  const results = [];
  const burst = { sent: 0, ok: 0, busy: 0, other: 0 };
  let counter = 0;
  const spec = (i) => ({
    model: models[i % models.length].id,
    prompt: PROMPTS[i % PROMPTS.length],
    max_tokens: 32 + ((i * 7) % 33), // 32..64
    temperature: 0.8,
    seed: 1000 + i,
    stream: Math.floor(i / models.length) % 2 === 0,
  });

  log(`(a) ${SECONDS} s, ${CONCURRENCY} clients, --parallel ${PARALLEL} --queue ${QUEUE} -t ${THREADS}: ` +
    `${models.map((m) => `${m.id} (${m.kind})`).join(', ')}`);
  const t0 = now();
  const deadline = t0 + SECONDS * 1000;
  async function client() {
    while (now() < deadline) {
      const r = await request(url, spec(counter++));
      r.at = now() - t0;
      results.push(r);
      if (r.status === 503) await sleep(20);
    }
  }
  // Halfway: parallel + queue + extra at once, more than the server takes while the clients keep it busy.
  async function overflow() {
    await sleep((SECONDS * 1000) / 2);
    const n = PARALLEL + QUEUE + EXTRA;
    burst.sent = n;
    const rs = await Promise.all(Array.from({ length: n }, (_, k) =>
      request(url, { model: diffusion.id, prompt: PROMPTS[k % PROMPTS.length], max_tokens: 48, temperature: 0.8, seed: 9000 + k })));
    for (const r of rs) {
      r.burst = true;
      results.push(r);
      if (r.status === 200 && !r.kind) burst.ok++;
      else if (r.status === 503) burst.busy++;
      else burst.other++;
    }
  }
  await Promise.all([...Array.from({ length: CONCURRENCY }, client), overflow()]);
  const wall = (now() - t0) / 1000;
  const after = await metrics(url);
  const loadHwm = memory(pid).hwm;
  clearInterval(poll);

  log(`idle 2 s, then until --idle-release ${IDLE_RELEASE} s has passed`);
  await sleep(2000);
  const idleMem = memory(pid);
  await sleep(Math.max(0, IDLE_RELEASE * 1000 + 1000 - 2000));
  const releasedMem = memory(pid);

  const ok = results.filter((r) => r.status === 200 && !r.kind);
  const errors = {};
  for (const r of results) if (r.kind) errors[r.kind] = (errors[r.kind] ?? 0) + 1;
  const nonBusy = Object.entries(errors).filter(([k]) => !k.startsWith('HTTP 503 server_busy')).reduce((s, [, v]) => s + v, 0);
  const tokens = ok.reduce((s, r) => s + r.tokens, 0);
  const d = (k) => (after[k] ?? 0) - (before[k] ?? 0);
  const classes = {};
  for (const r of ok) {
    const k = `${r.model} ${r.stream ? 'stream' : 'whole'}${r.burst ? ' (burst)' : ''}`;
    (classes[k] ??= []).push(r);
  }

  // ---- (b) batching ----------------------------------------------------------------------------------------------
  // Round by round, one after another then all at once; the best wall time of each, and every text compared with
  // the first round's one after another.
  async function batching(model) {
    const bodies = Array.from({ length: PARALLEL }, (_, k) => ({
      model: model.id, prompt: PROMPTS[k % PROMPTS.length], max_tokens: 48, temperature: 0.8, seed: 500 + k,
    }));
    const times = { sequential: [], together: [] };
    const runs = [];
    for (let round = 0; round < ROUNDS; round++) {
      let t = now();
      const one = [];
      for (const b of bodies) one.push(await request(url, b));
      times.sequential.push((now() - t) / 1000);
      t = now();
      const all = await Promise.all(bodies.map((b) => request(url, b)));
      times.together.push((now() - t) / 1000);
      runs.push(one, all);
    }
    const failed = runs.flat().filter((r) => r.status !== 200 || r.kind).map((r) => r.kind ?? r.status);
    const differ = bodies.map((_, k) => k).filter((k) => runs.some((run) => run[k].text !== runs[0][k].text));
    const sequential = Math.min(...times.sequential);
    const together = Math.min(...times.together);
    return {
      model: model.id, kind: model.kind, requests: PARALLEL, rounds: ROUNDS, sequential_s: sequential, together_s: together,
      speedup: sequential / together, times_s: times, identical: failed.length === 0 && differ.length === 0, differ, failed,
      tokens: runs[0].reduce((s, r) => s + r.tokens, 0),
    };
  }
  log(`(b) ${PARALLEL} requests one after another, then all at once, ${ROUNDS} rounds`);
  const batch = [await batching(diffusion)];
  if (autoregressive) batch.push(await batching(autoregressive));
  const finalMetrics = await metrics(url);
  await stopServer();

  // ---- the summary -----------------------------------------------------------------------------------------------
  const f = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
  const ms = (xs, p) => f(pct(xs, p), 0);
  const streamed = ok.filter((r) => r.stream);
  const figures = {
    command: `node bench/serve/load.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    machine: `${os.cpus()[0]?.model ?? 'cpu'} x ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`,
    server: { parallel: PARALLEL, queue: QUEUE, threads: THREADS, idle_release: IDLE_RELEASE, models },
    load: {
      seconds: wall, concurrency: CONCURRENCY, requests: results.length, ok: ok.length,
      requests_per_s: ok.length / wall, tokens: tokens, tokens_per_s: tokens / wall,
      latency_ms: { p50: pct(ok.map((r) => r.latency), 50), p99: pct(ok.map((r) => r.latency), 99) },
      ttft_ms: { p50: pct(streamed.map((r) => r.ttft).filter(Number.isFinite), 50), p99: pct(streamed.map((r) => r.ttft).filter(Number.isFinite), 99) },
      errors, non_503_errors: nonBusy, burst,
      by_class: Object.fromEntries(Object.entries(classes).sort().map(([k, rs]) => [k, {
        n: rs.length, tokens: rs.reduce((s, r) => s + r.tokens, 0),
        latency_p50_ms: pct(rs.map((r) => r.latency), 50), latency_p99_ms: pct(rs.map((r) => r.latency), 99),
        ttft_p50_ms: pct(rs.map((r) => r.ttft).filter(Number.isFinite), 50),
      }])),
    },
    memory_mib: {
      idle_at_start: startMem.rss, baseline: baseMem.rss, peak_during_load: peakRss, hwm_after_load: loadHwm,
      idle_2s_after_load: idleMem.rss, after_idle_release: releasedMem.rss, hwm_at_end: releasedMem.hwm,
    },
    metrics: {
      during_load: {
        tokens_per_model_call: d('unmask_tokens_generated_total') / d('unmask_forward_passes_total'),
        tokens_per_request_forward: d('unmask_tokens_generated_total') / d('unmask_request_forward_passes_total'),
        requests_per_model_call: d('unmask_request_forward_passes_total') / d('unmask_forward_passes_total'),
        batched_call_share: d('unmask_batched_passes_total') / d('unmask_forward_passes_total'),
        rounds: d('unmask_rounds_total'), model_calls: d('unmask_forward_passes_total'),
      },
      server_gauges_at_end: {
        unmask_tokens_per_forward: finalMetrics.unmask_tokens_per_forward,
        unmask_batch_size_mean: finalMetrics.unmask_batch_size_mean,
      },
    },
    batching: batch,
  };

  const L = figures.load;
  const M = figures.memory_mib;
  const D = figures.metrics.during_load;
  const rows = [
    ['requests (ok / sent)', `${L.ok} / ${L.requests} in ${f(L.seconds)} s`],
    ['requests/s', f(L.requests_per_s, 2)],
    ['generated tokens/s (usage)', f(L.tokens_per_s, 0)],
    ['latency p50 / p99', `${ms(ok.map((r) => r.latency), 50)} / ${ms(ok.map((r) => r.latency), 99)} ms`],
    ['time to first token p50 / p99 (streamed)', `${f(L.ttft_ms.p50, 0)} / ${f(L.ttft_ms.p99, 0)} ms`],
    ['errors', Object.keys(errors).length ? Object.entries(errors).map(([k, v]) => `${k}: ${v}`).join(', ') : 'none'],
    ['errors other than 503', `${nonBusy}${nonBusy ? ' (FAIL)' : ''}`],
    ['burst of parallel + queue + extra', `${burst.sent} sent: ${burst.ok} ok, ${burst.busy} refused 503, ${burst.other} other`],
    ['RSS idle at start / warm baseline', `${f(M.idle_at_start)} / ${f(M.baseline)} MiB`],
    ['RSS peak in load (100 ms polls) / VmHWM', `${f(M.peak_during_load)} / ${f(M.hwm_after_load)} MiB`],
    ['RSS 2 s after load', `${f(M.idle_2s_after_load)} MiB`],
    [`RSS ${Math.max(2, IDLE_RELEASE + 1)} s after load (--idle-release ${IDLE_RELEASE})`, `${f(M.after_idle_release)} MiB`],
    ['/metrics in load: tokens per model call', f(D.tokens_per_model_call, 2)],
    ['/metrics in load: tokens per request forward', f(D.tokens_per_request_forward, 2)],
    ['/metrics in load: requests per model call (mean batch)', f(D.requests_per_model_call, 2)],
    ['/metrics gauges at end: tokens_per_forward, batch_size_mean', `${f(figures.metrics.server_gauges_at_end.unmask_tokens_per_forward, 2)}, ${f(figures.metrics.server_gauges_at_end.unmask_batch_size_mean, 2)}`],
  ];
  const out = [];
  out.push(`## unmask serve under load`, '');
  out.push(`\`${figures.command}\` on ${figures.machine}; ${models.map((m) => `${m.id} (${m.kind})`).join(', ')}; ` +
    `--parallel ${PARALLEL} --queue ${QUEUE} -t ${THREADS}, ${CONCURRENCY} clients`, '');
  out.push('| figure | value |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`), '');
  out.push('| class | ok | tokens | latency p50 / p99 ms | first token p50 ms |', '|---|---|---|---|---|');
  for (const [k, c] of Object.entries(L.by_class)) {
    out.push(`| ${k} | ${c.n} | ${c.tokens} | ${f(c.latency_p50_ms, 0)} / ${f(c.latency_p99_ms, 0)} | ${f(c.ttft_p50_ms, 0)} |`);
  }
  out.push('', `| batching: the same requests (best of ${ROUNDS} rounds) | one after another | all at once | speedup | texts identical |`,
    '|---|---|---|---|---|');
  for (const b of batch) {
    const same = b.identical ? `yes, all ${b.requests} in every round` : `NO: ${b.differ.length ? 'requests ' + b.differ.join(', ') + ' differ' : ''} ${b.failed.length ? 'failed: ' + b.failed.join(', ') : ''}`;
    out.push(`| ${b.requests} x ${b.model} (${b.kind}), 48 tokens | ${f(b.sequential_s, 2)} s | ${f(b.together_s, 2)} s | ${f(b.speedup, 2)} | ${same} |`);
  }
  console.log(out.join('\n'));
  if (opt.json) fs.writeFileSync(opt.json, JSON.stringify(figures, null, 2) + '\n');
  const bad = nonBusy > 0 || batch.some((b) => !b.identical) || burst.busy === 0;
  if (burst.busy === 0) log('load.mjs: the burst provoked no 503');
  process.exitCode = bad ? 1 : 0;
}

main().catch(async (e) => {
  console.error(`load.mjs: ${e.stack ?? e}`);
  await stopServer().catch(() => {});
  process.exitCode = 1;
});
